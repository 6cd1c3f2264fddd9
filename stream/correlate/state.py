"""The state one entity keeps (its open findings, traffic windows, callers, recent alerts) and its codec.

The worker keeps every entity's state encoded, in memory and in the table's changelog, so the
encoding is positional MessagePack: field names are implied by position, trace ids travel as their
16 bytes, and an entity costs about half of its JSON. :func:`decode` also reads the JSON states an
earlier hotpath wrote (a changelog on a running cluster holds them), so a restored old state loads,
and the states of format 1, whose findings kept no compliance or remediation (they load with none).
"""

from __future__ import annotations

import binascii
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import msgpack
import orjson

from stream.correlate.lifecycle import EscalationState

FORMAT = 2  # the first item of an encoded state; JSON states (the format before 1) start with "{"
_WITHOUT_COMPLIANCE = 1  # the format before findings kept their compliance and remediation


@dataclass(slots=True)
class Bucket:
    """Traffic in one step-sized slice of event time (see :mod:`stream.correlate.windows`)."""

    start: float
    spans: int
    internet_spans: int


@dataclass(order=True, slots=True)
class AlertSeen:
    """A runtime alert on the entity; ordered by when it was observed (then the rest, for a stable order)."""

    observed_at: float
    uid: str
    source: str
    rule: str
    severity: str
    subject: str  # "" when the alert names none


@dataclass(slots=True)
class FindingState:
    """A finding's latest fields as its source reported them, and the escalation published for it."""

    source: str
    check: str
    title: str
    severity: str
    status: str
    resources: list[str]
    account: str | None
    region: str | None
    observed_at: str  # RFC 3339, as the record carried it
    escalation: EscalationState = EscalationState()
    compliance: dict[str, list[str]] = field(default_factory=dict)  # framework -> controls the finding fails
    remediation: dict[str, Any] | None = None  # {"description", "references"}, as the finding record carries it


@dataclass(slots=True)
class EntityState:
    clock: float | None = None  # latest event time of traffic or alerts on this entity
    last_exercised: float | None = None
    first_seen: float | None = None
    buckets: list[Bucket] = field(default_factory=list)  # ascending by start
    callers: dict[str, float] = field(default_factory=dict)  # caller entity -> last seen
    via: dict[str, float] = field(default_factory=dict)  # exercised_via entity -> last seen
    traces: list[str] = field(default_factory=list)
    alerts: list[AlertSeen] = field(default_factory=list)  # ascending
    findings: dict[str, FindingState] = field(default_factory=dict)  # by finding uid
    partition: int | None = None  # partition the entity's events come from
    position: int | None = None  # offset of the last event applied (redeliveries are skipped)


def encode(state: EntityState) -> bytes:
    return msgpack.packb([
        FORMAT, state.clock, state.last_exercised, state.first_seen, state.partition, state.position,
        [value for b in state.buckets for value in (b.start, b.spans, b.internet_spans)],
        state.callers, state.via, [_trace_bytes(trace) for trace in state.traces],
        [value for a in state.alerts for value in (a.observed_at, a.uid, a.source, a.rule, a.severity, a.subject)],
        {uid: [f.source, f.check, f.title, f.severity, f.status, f.resources, f.account, f.region, f.observed_at,
               f.compliance, f.remediation, *_escalation_fields(f.escalation)] for uid, f in state.findings.items()},
    ])


def decode(data: bytes) -> EntityState:
    """An encoded state, or the JSON one an earlier hotpath wrote."""
    if data[:1] == b"{":
        return _from_json(orjson.loads(data))
    (fmt, clock, last_exercised, first_seen, partition, position, buckets, callers, via, traces, alerts,
     findings) = msgpack.unpackb(data, strict_map_key=True)
    if fmt not in (FORMAT, _WITHOUT_COMPLIANCE):
        raise ValueError(f"entity state in format {fmt!r}, not {FORMAT}")
    return EntityState(
        clock=clock, last_exercised=last_exercised, first_seen=first_seen,
        buckets=[Bucket(*buckets[i:i + 3]) for i in range(0, len(buckets), 3)],
        callers=callers, via=via,
        traces=[trace.hex() if isinstance(trace, bytes) else trace for trace in traces],
        alerts=[AlertSeen(*alerts[i:i + 6]) for i in range(0, len(alerts), 6)],
        findings={uid: _finding(fields, fmt) for uid, fields in findings.items()},
        partition=partition, position=position)


def _finding(fields: list[Any], fmt: int) -> FindingState:
    """A finding's positional fields: nine, then (since format 2) compliance and remediation, then its escalation."""
    if fmt == _WITHOUT_COMPLIANCE:
        return FindingState(*fields[:9], escalation=EscalationState(*fields[9:]))
    return FindingState(*fields[:9], escalation=EscalationState(*fields[11:]), compliance=fields[9],
                        remediation=fields[10])


def _escalation_fields(escalation: EscalationState) -> list[Any]:
    """Nothing for a finding never escalated (most of them), else version, active, priority, score, then the
    mute rule of a suppressed one and whether an attack lifted a mute, when set (so states written before
    mutes read the same)."""
    if escalation == EscalationState():
        return []
    fields = [escalation.version, escalation.active, escalation.priority, escalation.score]
    if escalation.lifted:
        return fields + [escalation.muted_by, True]
    return fields + [escalation.muted_by] if escalation.muted_by is not None else fields


def _trace_bytes(trace: str) -> bytes | str:
    """A trace id as its 16 bytes when decoding them gives it back exactly, else the text."""
    if len(trace) == 32 and trace == trace.lower():
        try:
            return binascii.unhexlify(trace)
        except binascii.Error:
            pass
    return trace


def _from_json(data: dict[str, Any]) -> EntityState:
    """A state as the JSON format held it: ``p``/``pos``, positional buckets and alerts, ``esc`` lists.

    Its buckets also counted error spans, which nothing read: they are left behind.
    """
    return EntityState(
        clock=data["clock"], last_exercised=data["last_exercised"], first_seen=data["first_seen"],
        buckets=[Bucket(start, spans, internet) for start, spans, _errors, internet in data["buckets"]],
        callers=data["callers"], via=data["via"], traces=data["traces"],
        alerts=[AlertSeen(*alert) for alert in data["alerts"]],
        findings={uid: FindingState(
            **{k: v for k, v in finding.items() if k != "esc"}, escalation=EscalationState(*(finding["esc"] or ())))
            for uid, finding in data["findings"].items()},
        partition=data["p"], position=data["pos"])


class EncodedStates(MutableMapping):
    """Entity states kept encoded in ``data`` (a dict for replay and the tests, the Faust table's store in
    the worker: stream.worker.table): each read is a copy, so a held write that is dropped (the entity
    failed) leaves the stored state exactly as it was."""

    def __init__(self, data: MutableMapping[str, bytes] | None = None) -> None:
        self.data = {} if data is None else data

    def __getitem__(self, key: str) -> Any:
        return decode(self.data[key])

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = encode(value)

    def __delitem__(self, key: str) -> None:
        del self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)
