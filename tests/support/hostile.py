"""Records built to hurt: too large, naming too many entities, or dated where hotpath must not believe them."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from stream.demo.records import falco_event
from stream.demo.tracegen import TraceBuilder, aws_call

FIFTY_MB = 50 * 1024 * 1024


def fifty_megabyte_finding() -> bytes:
    """A syntactically valid JSON finding inflated to 50 MB by one long string."""
    head, tail = b'{"detail-type": "Config Rules Compliance Change", "detail": {"annotation": "', b'"}}'
    return head + b"A" * (FIFTY_MB - len(head) - len(tail)) + tail


YEAR_10000_IN_UTC = "9999-12-31T23:59:59-23:00"
YEAR_2100 = datetime(2100, 1, 1, tzinfo=UTC).timestamp()
SKEW_REASON = r"is implausible: more than 300 s ahead of the clock \(HOTPATH_MAX_CLOCK_SKEW_S\)"
AGE_REASON = r"is implausible: more than 604800 s before the clock \(HOTPATH_MAX_EVENT_AGE_S\)"


def falco(ts: float, uuid: str = "5d4f0c67-a0b6-4a6a-9d4e-3c1f0e8a2b11") -> dict:
    """A Falco alert from the payments pod at ``ts``."""
    event = falco_event("Terminal shell in container", ts, namespace="pay", pod="payments-api-7d9f-x2k4q",
                        image="registry/payments-api:1.0", node="node-1", rng=random.Random(1))
    return {**event, "uuid": uuid}


def span_ending_at(ts: float, bucket: str = "acme-statements") -> bytes:
    """An OTLP message of one span reading ``bucket`` at ``ts``."""
    builder = TraceBuilder(seed=3)
    builder.client_span("payments-api", "S3.GetObject", start=ts,
                        attributes=aws_call("S3", "GetObject", {"aws.s3.bucket": bucket}))
    return builder.to_otlp_proto()


def tables_call(names: tuple[str, ...]) -> dict:
    """The attributes of a DynamoDB BatchGetItem span naming ``names``."""
    return aws_call("DynamoDB", "BatchGetItem", {"aws.dynamodb.table_names": names})


def alert_record(uid: str, entity: str, observed_at: str) -> dict:
    """An alert as it travels on hotpath.entity-events (as an ingest without the time check wrote it)."""
    return {"kind": "alert", "uid": uid, "source": "falco", "rule": "Terminal shell in container",
            "severity": "critical", "entities": [entity], "observed_at": observed_at, "subject": "payments-api"}
