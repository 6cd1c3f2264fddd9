"""HOTPATH_MAX_JSON_DEPTH bounds every JSON input the worker decodes, not just the default's."""

from __future__ import annotations

import orjson
import pytest
from inputs import falco_event

from stream.demo.tracegen import TraceBuilder, Workload, encode_batch
from stream.entities.context import Context
from stream.ingest.decode import Ingest
from stream.ingest.formats.limits import DecodeLimits
from stream.ingest.router import Router
from stream.models import DecodeError
from stream.settings import load_settings

NESTED_LEVELS = 20  # deeper than the limit set below, well within the default of 64


def nested(levels: int) -> dict:
    value: dict = {}
    for _ in range(levels):
        value = {"x": value}
    return value


def trace_message() -> dict:
    builder = TraceBuilder(seed=1, workloads=[Workload("payments-api")])
    builder.server_span("payments-api", "GET /pay", start=1_700_000_000.0, client_address="10.0.0.2")
    return orjson.loads(encode_batch(builder.take(), "otlp_json"))


RECORDS = {
    "alerts": falco_event(extra=nested(NESTED_LEVELS)),
    "assets": {"id": "arn:aws:s3:::acme-statements", "aliases": ["acme-statements"], "extra": nested(NESTED_LEVELS)},
    "findings": {"version": "0", "source": "aws.config", "detail-type": "Config Rules Compliance Change",
                 "extra": nested(NESTED_LEVELS)},
    "traces": {**trace_message(), "extra": nested(NESTED_LEVELS)},
}


def ingest(max_json_depth: int) -> Ingest:
    settings = load_settings(max_json_depth=max_json_depth)
    return Ingest(Router(Context(), settings.window_step_s), DecodeLimits.from_settings(settings))


@pytest.mark.parametrize("stream", sorted(RECORDS))
def test_a_lowered_json_depth_limit_refuses_deeper_records_on_every_input(stream):
    value = orjson.dumps(RECORDS[stream])
    with pytest.raises(DecodeError, match="nested too deeply \\(over 16 levels\\)"):
        ingest(16)(stream, value)


@pytest.mark.parametrize("stream", ["alerts", "assets", "traces"])
def test_the_same_records_decode_under_the_default_limit(stream):
    ingest(64)(stream, orjson.dumps(RECORDS[stream]))
