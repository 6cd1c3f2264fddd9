"""The normalized records every decoder produces and every later stage consumes.

Findings, alerts and assets are pydantic models: they arrive a few at a time and are worth
validating. A :class:`Touch` is built on the trace hot path (several per Kafka message), so it is a
plain slotted dataclass with epoch-second times.

``to_record()`` gives the normalized JSON shape that ``hotpath inspect`` prints and that travels on
the internal ``hotpath.entity-events`` topic.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Severity = Literal["critical", "high", "medium", "low", "informational"]
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low", "informational")
Criticality = Literal["critical", "high", "medium", "low"]
DataClassification = Literal["pci", "pii", "confidential", "internal", "public"]


class DecodeError(Exception):
    """The one error a decoder raises: the input is not something hotpath can read.

    ``reason`` is a short, user-facing sentence; it is what lands in the dead-letter record.
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def epoch_to_rfc3339(ts: float) -> str:
    """Seconds since the epoch as RFC 3339 UTC with millisecond precision."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def rfc3339(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def to_record(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        for key, value in data.items():
            if isinstance(value, str) and key.endswith("_at") and value.endswith("+00:00"):
                data[key] = value.replace("+00:00", "Z")
        return data

    @property
    def event_time(self) -> float:
        return self.observed_at.timestamp()  # type: ignore[attr-defined]


class Remediation(BaseModel):
    """How to fix a finding, as its source says: a description and the http(s) references it gives."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    description: str = ""
    references: list[str] = []


class Finding(_Record):
    """A configuration finding from a CSPM tool, on one or more resources (entity ids).

    ``compliance`` names the controls the finding fails, by framework (``{"CIS-2.0": ["2.1.5"]}``);
    ``remediation`` is the source's advice, when it gives any.
    """

    kind: Literal["finding"] = "finding"
    uid: str
    source: Literal["prowler", "securityhub", "awsconfig"]
    check: str
    title: str
    severity: Severity
    status: Literal["open", "resolved"]
    resources: list[str] = Field(min_length=1)
    account: str | None = None
    region: str | None = None
    observed_at: datetime
    compliance: dict[str, list[str]] = {}
    remediation: Remediation | None = None


class Alert(_Record):
    """A runtime alert (Falco, GuardDuty) resolved to the entities it concerns."""

    kind: Literal["alert"] = "alert"
    uid: str
    source: Literal["falco", "guardduty"]
    rule: str
    severity: Severity
    entities: list[str] = Field(min_length=1)
    observed_at: datetime
    subject: str | None = Field(default=None, description="what the alert fired on, for reasons: pod, instance")


class AssetTags(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    criticality: Criticality | None = None
    data_classification: DataClassification | None = None
    environment: str | None = None
    owner: str | None = None
    internet_facing: bool | None = None


class Asset(_Record):
    """What an entity is worth, what else it is called, and whose traffic exercises it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    kind: Literal["asset"] = "asset"
    id: str
    aliases: list[str] = []
    service: str | None = None
    tags: AssetTags = AssetTags()
    exercised_via: list[str] = []

    @property
    def event_time(self) -> float:
        return 0.0


@dataclass(slots=True)
class Touch:
    """Traffic that reached one entity, folded over one Kafka message (a batch of spans).

    ``services`` are the calling services' entity ids; times are epoch seconds (span end times).
    """

    entity: str
    services: list[str]
    spans: int
    errors: int
    internet_spans: int
    first_seen: float
    last_seen: float
    trace_ids: list[str] = field(default_factory=list)

    kind = "touch"

    @property
    def event_time(self) -> float:
        return self.last_seen

    def to_record(self) -> dict[str, Any]:
        return {
            "kind": "touch",
            "entity": self.entity,
            "services": self.services,
            "spans": self.spans,
            "errors": self.errors,
            "internet_spans": self.internet_spans,
            "first_seen": epoch_to_rfc3339(self.first_seen),
            "last_seen": epoch_to_rfc3339(self.last_seen),
            "trace_ids": self.trace_ids,
        }


@dataclass(slots=True)
class TraceBatch:
    """What one OTLP message yields: touches per entity, and pod-to-service facts learned on the way."""

    touches: list[Touch]
    pods: dict[str, str] = field(default_factory=dict)
    over_cap: str | None = None  # why some entities the message names were dropped (one dead letter per message)
    last_seen: float | None = None  # the latest span end (epoch seconds): when its pods were last seen running


NormalizedRecord = Finding | Alert | Asset | Touch


def parse_rfc3339(value: str) -> float:
    """RFC 3339 text (``Z`` or an offset) to epoch seconds."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def bucket_start(ts: float, step_s: float) -> float:
    """Start of the step-sized bucket that holds event time ``ts``."""
    return ts - (ts % step_s)


def add_trace_ids(kept: list[str], new: Iterable[str], limit: int) -> None:
    """Add the ``new`` trace ids not yet ``kept`` and keep the latest ``limit``: evidence stays recent and small."""
    kept += [trace_id for trace_id in new if trace_id not in kept]
    del kept[: max(0, len(kept) - limit)]
