"""The escalation event as the sinks read it (topics/schemas/escalation.schema.json), typed at the edge.

Events arrive a few per second at most, so each one is validated once when it is read from Kafka;
the sinks then use attributes instead of digging through dicts. Times stay the RFC 3339 strings
the schema carries.

Everything a sink sends is derived from this model, so this is where the event is made fit to leave
hotpath: :func:`masked_event` masks every sender-chosen text (finding titles and ids, resource and
alert ids, asset names, reasons) for card numbers and credentials, and the model then cuts every
text to ``TEXT_MAX_CHARS`` and every list to ``LIST_MAX_ITEMS`` (mask first, cut after, so a cut
never leaves part of a card number unmasked). Fields the schema does not name are dropped. Each
sink's payload is therefore bounded whatever the record held, before the sink applies its own API's
limits.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from stream.deliver.http import truncate
from stream.ingest.formats import jsonsafe
from stream.models import DecodeError, Severity
from stream.redact import mask_fields
from stream.settings import Priority

State = Literal["escalated", "updated", "resolved"]
TEXT_MAX_CHARS = 1024
LIST_MAX_ITEMS = 20
# Hex ids: the escalation uid (a digest hotpath derives) and trace ids (32 hex digits, checked below)
# leave no room for a credential, and masking a run of decimal digits inside one would break it.
UNMASKED_PATHS = frozenset({("escalation_uid",), ("evidence", "trace_ids")})

Text = Annotated[str, AfterValidator(lambda text: truncate(text, TEXT_MAX_CHARS))]
TraceId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]


def _rfc3339(timestamp: str) -> str:
    try:
        epoch_ms(timestamp)
    except ValueError:
        raise ValueError("not an RFC 3339 time") from None
    return timestamp


Timestamp = Annotated[str, AfterValidator(_rfc3339)]


def _first_items(items: list) -> list:
    return items[:LIST_MAX_ITEMS]


def _first_entries(entries: dict) -> dict:
    return dict(list(entries.items())[:LIST_MAX_ITEMS])


Texts = Annotated[list[Text], AfterValidator(_first_items)]


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class EscalatedFinding(_Part):
    source: Text
    check: Text
    title: Text
    severity: Severity
    resources: Texts
    account: Text | None
    region: Text | None


class Factors(_Part):
    severity: Severity
    exercised: bool
    span_count: int = Field(ge=0)
    internet_exposed: bool
    exposure_path: Texts
    under_attack: bool
    alerts: int = Field(ge=0)
    data_classification: Text | None
    criticality: Text | None
    held: bool
    contributions: Annotated[dict[Text, float], AfterValidator(_first_entries)]


class Evidence(_Part):
    trace_ids: Annotated[list[TraceId], AfterValidator(_first_items)]
    alert_uids: Texts
    first_seen: Timestamp | None
    last_seen: Timestamp | None


class AssetContext(_Part):
    owner: Text | None
    environment: Text | None
    service: Text | None


class Escalation(_Part):
    finding_uid: Text = Field(min_length=1)
    escalation_uid: str = Field(pattern=r"^hp-[0-9a-f]{32}$")
    state: State
    version: int = Field(ge=1)
    priority: Priority
    # The priority before this event, on an ``updated`` event (a priority change); None otherwise.
    previous_priority: Priority | None = None
    score: float = Field(ge=0, le=100)
    resource: Text = Field(min_length=1)
    finding: EscalatedFinding
    factors: Factors
    reasons: Texts = Field(min_length=1)
    evidence: Evidence
    asset: AssetContext
    event_time: Timestamp
    emitted_at: Timestamp

    @property
    def dedup_key(self) -> str:
        """What every sink de-duplicates on: stable across the finding's whole lifecycle."""
        return self.escalation_uid

    @property
    def event_epoch_ms(self) -> int:
        return epoch_ms(self.event_time)

    @property
    def priority_change(self) -> str | None:
        """``"P3 -> P1"`` when this event changes the priority a sink was last told, else None."""
        if self.previous_priority is None or self.previous_priority == self.priority:
            return None
        return f"{self.previous_priority} -> {self.priority}"


def epoch_ms(timestamp: str) -> int:
    """An RFC 3339 time as milliseconds since the epoch (OCSF's ``timestamp_t``)."""
    return round(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000)


def masked_event(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` with every text in it masked (:func:`stream.redact.mask`), keys included.

    What the worker applies before publishing an escalation and before showing it on
    ``/escalations``; the sinks apply it again when they read the event, which changes nothing
    (masking is idempotent and deterministic, so a masked id still names one finding).
    """
    return mask_fields(event, UNMASKED_PATHS)


def parse_escalation(value: bytes | None, max_bytes: int = jsonsafe.DEFAULT_MAX_BYTES) -> Escalation:
    """Read one record of ``hotpath.escalations``, or raise DecodeError saying what is wrong with it."""
    if value is None:
        raise DecodeError("escalation record has no value")
    data = jsonsafe.expect_dict(jsonsafe.loads(value, max_bytes), "escalation event")
    return escalation_from_dict(data)


def escalation_from_dict(data: dict[str, Any]) -> Escalation:
    """The event masked, bounded and typed; DecodeError naming the first field that is wrong."""
    try:
        return Escalation.model_validate(masked_event(data))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(part) for part in err["loc"]) or "event"
        raise DecodeError(f"escalation event: {where}: {err['msg']}") from None


def trace_links(escalation: Escalation, url_template: str) -> list[tuple[str, str]]:
    """``(url, text)`` for each sample trace, through the trace UI's URL template (``{trace_id}``)."""
    return [(url_template.replace("{trace_id}", trace_id), f"Trace {trace_id}")
            for trace_id in escalation.evidence.trace_ids]
