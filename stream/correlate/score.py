"""The exploitability score: a deterministic, monotonic, explainable function of the evidence.

Each factor adds points (weights in :class:`stream.settings.ScoreSettings`); the sum is capped at
100 and mapped to P1..P5. More evidence never lowers the score: every contribution grows (or stays)
as its evidence grows, and the sum of non-negative parts is capped, not normalized.

The held rule is the product's promise: a finding that no traffic exercises is capped below the P3
threshold, however severe, unless a runtime alert on the same entity shows active attack.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from stream.models import Severity
from stream.settings import Priority, ScoreSettings

ALERT_WEIGHT: dict[str, float] = {"critical": 1.0, "high": 0.8, "medium": 0.5, "low": 0.25, "informational": 0.1}
DATA_SHARE: dict[str, float] = {"pci": 1.0, "pii": 0.8, "confidential": 0.6, "internal": 0.2, "public": 0.0}
CRITICALITY_SHARE: dict[str, float] = {"critical": 1.0, "high": 0.7, "medium": 0.4, "low": 0.1}


@dataclass(frozen=True, slots=True)
class AlertEvidence:
    uid: str
    source: str
    rule: str
    severity: Severity
    age_s: float
    subject: str
    on_entity: bool  # on the finding's own entity (lifts the held rule), else on a service exercising it


@dataclass(frozen=True, slots=True)
class Evidence:
    """Everything the score looks at for one finding at one moment."""

    severity: Severity
    span_count: int = 0
    internet_direct: bool = False
    exposure_path: tuple[str, ...] = ()
    alerts: tuple[AlertEvidence, ...] = ()
    data_classification: str | None = None
    criticality: str | None = None

    @property
    def exercised(self) -> bool:
        return self.span_count > 0

    @property
    def internet_exposed(self) -> bool:
        return self.internet_direct or bool(self.exposure_path)

    @property
    def attacked_directly(self) -> bool:
        return any(alert.on_entity for alert in self.alerts)


@dataclass(frozen=True, slots=True)
class Score:
    value: float
    priority: Priority
    held: bool
    contributions: dict[str, float] = field(default_factory=dict)


def alert_pressure(alerts: tuple[AlertEvidence, ...], half_life_s: float) -> float:
    """Alerts weighted by severity and halved every ``half_life_s`` of age, saturating at 1."""
    total = sum(ALERT_WEIGHT[a.severity] * 0.5 ** (max(a.age_s, 0.0) / half_life_s) for a in alerts)
    return min(1.0, total)


def volume_share(span_count: int, saturation: int) -> float:
    """How much traffic, on a log scale: 1 span is a little, ``saturation`` spans is all of it."""
    if span_count <= 0:
        return 0.0
    return min(1.0, math.log1p(span_count) / math.log1p(saturation))


def priority_for(value: float, weights: ScoreSettings) -> Priority:
    if value >= weights.p1_min:
        return "P1"
    if value >= weights.p2_min:
        return "P2"
    if value >= weights.p3_min:
        return "P3"
    if value >= weights.p4_min:
        return "P4"
    return "P5"


def score(evidence: Evidence, weights: ScoreSettings) -> Score:
    parts: dict[str, float] = {"severity": getattr(weights, f"severity_{evidence.severity}")}
    if evidence.exercised:
        parts["exercised"] = weights.weight_exercised
        parts["volume"] = weights.weight_volume * volume_share(evidence.span_count, weights.volume_saturation_spans)
    if evidence.internet_direct:
        parts["internet"] = weights.weight_internet_direct
    elif evidence.exposure_path:
        parts["internet"] = weights.weight_internet_path
    if evidence.alerts:
        parts["attack"] = weights.weight_attack * alert_pressure(evidence.alerts, weights.attack_half_life_s)
    if evidence.data_classification:
        parts["data"] = weights.weight_data * DATA_SHARE.get(evidence.data_classification, 0.0)
    if evidence.criticality:
        parts["criticality"] = weights.weight_criticality * CRITICALITY_SHARE.get(evidence.criticality, 0.0)
    contributions = {name: round(points, 2) for name, points in parts.items() if points > 0}
    value = min(100.0, sum(parts.values()))
    held = not evidence.exercised and not evidence.attacked_directly
    if held:
        value = min(value, weights.held_cap)
    value = round(value, 1)
    return Score(value=value, priority=priority_for(value, weights), held=held, contributions=contributions)


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 90:
        return f"{seconds} s ago"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min ago"
    return f"{round(seconds / 3600, 1)} h ago"


def _display(entity: str) -> str:
    """A short name for a path hop: the service, or the resource part of an ARN."""
    if entity.startswith("arn:"):
        return entity.rsplit(":", 1)[-1].rsplit("/", 1)[-1] or entity
    return entity.removeprefix("service:")


def reasons(evidence: Evidence, result: Score) -> list[str]:
    """Plain-language reasons, strongest first, that a responder reads before the numbers."""
    out: list[str] = []
    if evidence.internet_direct:
        out.append("receives traffic directly from the internet")
    elif evidence.exposure_path:
        hops = " -> ".join(_display(e) for e in evidence.exposure_path[:-1])
        out.append(f"reached from the internet via {hops}")
    for alert in sorted(evidence.alerts, key=lambda a: a.age_s)[:3]:
        source = "Falco" if alert.source == "falco" else "GuardDuty"
        out.append(f"{source}: {alert.rule} on {alert.subject} {_ago(alert.age_s)}")
    if evidence.exercised:
        out.append(f"exercised by live traffic: {evidence.span_count} spans in the window")
    else:
        out.append("no live traffic touches it in the window")
    if evidence.data_classification in ("pci", "pii", "confidential"):
        out.append(f"holds {evidence.data_classification} data")
    if evidence.criticality in ("critical", "high"):
        out.append(f"{evidence.criticality}-criticality asset")
    out.append(f"{evidence.severity} severity finding")
    if result.held:
        out.append("held: not exercised and no attack on the resource, so capped below P3")
    return out
