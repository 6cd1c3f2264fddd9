"""The escalation event of ``hotpath.escalations``, defined once: the correlator builds it, the sinks read it.

The correlator builds an :class:`Escalation` from values it has already checked
(:meth:`Escalation.model_construct`, no validation), so the topic carries the whole event as judged.
Whoever reads the topic validates with the same model: every text is cut to ``TEXT_MAX_CHARS`` and
every list to ``LIST_MAX_ITEMS``, fields the model does not name are dropped, and a wrong field is
refused, so a sink's payload is bounded whatever the record held. The JSON Schema in
``topics/schemas/escalation.schema.json`` is generated from this model
(``python -m stream.correlate.event``) and a test keeps the two the same.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

from stream.models import Criticality, DataClassification, Severity
from stream.redact import truncate
from stream.settings import Priority

State = Literal["escalated", "updated", "resolved", "suppressed"]
TEXT_MAX_CHARS = 1024
LIST_MAX_ITEMS = 20
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "topics" / "schemas" / "escalation.schema.json"


def _rfc3339(timestamp: str) -> str:
    try:
        epoch_ms(timestamp)
    except ValueError:
        raise ValueError("not an RFC 3339 time") from None
    return timestamp


def _first_items(items: list) -> list:
    return items[:LIST_MAX_ITEMS]


def _first_entries(entries: dict) -> dict:
    return dict(list(entries.items())[:LIST_MAX_ITEMS])


def _web_links(urls: list[str]) -> list[str]:
    """Only absolute http(s) links: what a responder's tools open (a source may list commands there)."""
    return [url for url in urls if url.startswith(("https://", "http://"))][:LIST_MAX_ITEMS]


Text = Annotated[str, AfterValidator(lambda text: truncate(text, TEXT_MAX_CHARS))]
Texts = Annotated[list[Text], AfterValidator(_first_items)]
WebLinks = Annotated[list[Text], AfterValidator(_web_links)]
TraceId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
PolicyVersion = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="the Policy.digest (SHA-256, hex)")]
Day = Annotated[str, Field(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", json_schema_extra={"format": "date"})]
Timestamp = Annotated[str, AfterValidator(_rfc3339), Field(json_schema_extra={"format": "date-time"})]


def _one_of(values: tuple) -> WithJsonSchema:
    """The values hotpath writes, as the schema promises them; a reader accepts any text (it did before)."""
    return WithJsonSchema({"enum": list(values)})


FindingSource = Literal["prowler", "securityhub", "awsconfig"]


class _Part(BaseModel):
    # A reader ignores fields it does not know; a producer must not add any (the schema says so).
    model_config = ConfigDict(frozen=True, extra="ignore", json_schema_extra={"additionalProperties": False})


class Remediation(_Part):
    """How to fix the finding, as its source advises."""

    description: Text
    references: WebLinks = Field(description="http(s) links only")


class EscalatedFinding(_Part):
    source: Annotated[Text, _one_of(get_args(FindingSource))]
    check: Text
    title: Text
    severity: Severity
    resources: Texts
    account: Text | None
    region: Text | None
    compliance: Annotated[dict[Text, Texts], AfterValidator(_first_entries)] = Field(
        default={}, description="the controls the finding fails, by framework ({} when its source names none)")
    remediation: Remediation | None = None


class Factors(_Part):
    severity: Severity
    exercised: bool
    span_count: int = Field(ge=0)
    internet_exposed: bool
    exposure_path: Texts
    under_attack: bool
    alerts: int = Field(ge=0)
    data_classification: Annotated[Text | None, _one_of(get_args(DataClassification) + (None,))]
    criticality: Annotated[Text | None, _one_of(get_args(Criticality) + (None,))]
    held: bool = Field(description="true when the held rule capped the score (not exercised, not under attack)")
    contributions: Annotated[dict[Text, float], AfterValidator(_first_entries)] = Field(
        description="points each factor added")


class EvidenceLinks(_Part):
    """Where a responder looks: sample traces, the alerts seen, and when traffic was seen."""

    trace_ids: Annotated[list[TraceId], AfterValidator(_first_items)]
    alert_uids: Texts
    first_seen: Timestamp | None
    last_seen: Timestamp | None


class AssetContext(_Part):
    """Routing context from the asset file (may be empty)."""

    owner: Text | None
    environment: Text | None
    service: Text | None


class SuppressedBy(_Part):
    """The mute that keeps a suppressed escalation from paging: who accepted the risk, why, until when."""

    rule_id: Text
    source: Text = Field(description="the policy file the rule comes from, or hotpath.policy (the policy topic)")
    policy_version: PolicyVersion = Field(description="digest of the policy the rule is part of")
    owner: Text
    reason: Text
    ticket: Text | None
    expires: Day | None = Field(description="last day (UTC) the rule applies")


class SuppressionEnded(_Part):
    """Why a finding that was suppressed escalates again."""

    rule_id: Text
    why: Literal["expired", "removed", "attack"]


class Routing(_Part):
    """The sinks a policy route sends the escalation to (absent: every sink)."""

    sinks: Texts = Field(description="names of the sinks (HOTPATH_SINKS) that deliver it")
    opsgenie_team: Text | None = Field(description="the Opsgenie responder team, when the route names one")


class Escalation(_Part):
    """One lifecycle event of one finding on hotpath.escalations, keyed by finding_uid. (finding_uid, version) is
    unique; a consumer keeps the highest version per finding_uid."""

    model_config = ConfigDict(title="hotpath escalation event", json_schema_extra={
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://hotpath.dev/schemas/escalation.schema.json",
        "additionalProperties": False,
    })

    finding_uid: Text = Field(min_length=1)
    escalation_uid: str = Field(pattern=r"^hp-[0-9a-f]{32}$",
                                description="stable id derived from finding_uid; the dedup key for sinks")
    state: State
    version: int = Field(ge=1)
    priority: Priority
    previous_priority: Priority | None = Field(
        default=None, description="on an updated event (a priority change), the priority before it; sinks show the "
                                  "change. Absent from other events.")
    score: float = Field(ge=0, le=100)
    resource: Text = Field(min_length=1)
    finding: EscalatedFinding
    factors: Factors
    reasons: Texts = Field(min_length=1)
    evidence: EvidenceLinks
    asset: AssetContext
    event_time: Timestamp
    emitted_at: Timestamp
    policy_version: PolicyVersion | None = Field(
        default=None, description="digest of the policy that judged the event; null without a policy")
    suppressed_by: SuppressedBy | None = Field(
        default=None, description="on a suppressed event, the mute that applies. Absent from other events.")
    suppression_ended: SuppressionEnded | None = Field(
        default=None, description="on the first event after a suppression ends, which rule and why. Absent "
                                  "from other events.")
    routing: Routing | None = Field(
        default=None, description="when a policy route matched: the only paging sinks that deliver it. Absent: "
                                  "every sink.")

    def record(self) -> dict[str, Any]:
        """The event as the topic carries it: ``previous_priority``, ``suppressed_by``, ``suppression_ended``
        and ``routing`` only on an event that set them."""
        return self.model_dump(exclude_unset=True)

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


def escalation_schema() -> str:
    """The JSON Schema of the event, as ``topics/schemas/escalation.schema.json`` holds it."""
    return json.dumps(Escalation.model_json_schema(), indent=2) + "\n"


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMA_PATH
    target.write_text(escalation_schema())
    print(f"wrote {target}")
