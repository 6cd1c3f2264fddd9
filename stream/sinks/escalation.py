"""The escalation event as the sinks read it (topics/schemas/escalation.schema.json), typed at the edge.

Events arrive a few per second at most, so each one is validated once when it is read from Kafka;
the sinks then use attributes instead of digging through dicts. Times stay the RFC 3339 strings
the schema carries, and unknown fields are kept, so the generic webhook can pass the event on as
it was written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stream.formats import jsonsafe
from stream.models import DecodeError, Severity
from stream.settings import Priority

State = Literal["escalated", "updated", "resolved"]


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")


class EscalatedFinding(_Part):
    source: str
    check: str
    title: str
    severity: Severity
    resources: list[str]
    account: str | None
    region: str | None


class Evidence(_Part):
    trace_ids: list[str]
    alert_uids: list[str]
    first_seen: str | None
    last_seen: str | None


class AssetContext(_Part):
    owner: str | None
    environment: str | None
    service: str | None


class Escalation(_Part):
    finding_uid: str = Field(min_length=1)
    escalation_uid: str = Field(pattern=r"^hp-[0-9a-f]{32}$")
    state: State
    version: int = Field(ge=1)
    priority: Priority
    score: float = Field(ge=0, le=100)
    resource: str = Field(min_length=1)
    finding: EscalatedFinding
    factors: dict[str, Any]
    reasons: list[str] = Field(min_length=1)
    evidence: Evidence
    asset: AssetContext
    event_time: str
    emitted_at: str

    @property
    def dedup_key(self) -> str:
        """What every sink de-duplicates on: stable across the finding's whole lifecycle."""
        return self.escalation_uid

    @property
    def event_epoch_ms(self) -> int:
        return epoch_ms(self.event_time)


def epoch_ms(timestamp: str) -> int:
    """An RFC 3339 time as milliseconds since the epoch (OCSF's ``timestamp_t``)."""
    return round(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000)


def parse_escalation(value: bytes | None, max_bytes: int = jsonsafe.DEFAULT_MAX_BYTES) -> Escalation:
    """Read one record of ``hotpath.escalations``, or raise DecodeError saying what is wrong with it."""
    if value is None:
        raise DecodeError("escalation record has no value")
    data = jsonsafe.expect_dict(jsonsafe.loads(value, max_bytes), "escalation event")
    return escalation_from_dict(data)


def escalation_from_dict(data: dict[str, Any]) -> Escalation:
    try:
        escalation = Escalation.model_validate(data)
        epoch_ms(escalation.event_time)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(part) for part in err["loc"]) or "event"
        raise DecodeError(f"escalation event: {where}: {err['msg']}") from None
    except ValueError:
        raise DecodeError(f"escalation event: event_time is not an RFC 3339 time: {data.get('event_time')!r}") from None
    return escalation


def trace_links(escalation: Escalation, url_template: str) -> list[tuple[str, str]]:
    """``(url, text)`` for each sample trace, through the trace UI's URL template (``{trace_id}``)."""
    return [(url_template.replace("{trace_id}", trace_id), f"Trace {trace_id}")
            for trace_id in escalation.evidence.trace_ids]
