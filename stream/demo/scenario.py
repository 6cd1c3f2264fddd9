"""The seeded fintech scenario: every record the demo plays through Kafka, and what should come out.

``build_scenario(seed, scale, start, minutes)`` is pure: the same arguments give the same bytes
(ids come from seeded generators, times from ``start``). It returns the asset context, CSPM findings
(Prowler OCSF and Security Hub ASFF in EventBridge events), OTLP trace batches made by the real
opentelemetry-sdk and encoded as the Collector's Kafka exporter writes them, and runtime alerts
(Falco through falcosidekick, GuardDuty in EventBridge events), each list in event-time order, plus
:class:`Expected`: which findings escalate at which priority, and which are held back. One finding
is an accepted risk that the demo's policy (``policy.yaml``, dated for the scenario by
:meth:`Scenario.policy_text`) suppresses; :meth:`Expected.under_demo_policy` is the outcome with it.

Time line (``minutes`` of event time from ``start``): traffic flows throughout; the CSPM scan's
findings arrive over the first fifth; Falco fires on a ``kyc`` pod and then a ``payments-api`` pod,
GuardDuty on an unrelated instance, and noise alerts on workloads nobody has findings about. Alerts
on the story's services happen at most seven minutes before the end, so the attack evidence is
still fresh when the scenario's final scores are read.

``scale`` multiplies the traffic and adds entities (see :mod:`stream.demo.estate`).
"""

from __future__ import annotations

import heapq
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson

from stream.demo import DEFAULT_MINUTES, DEFAULT_SEED, MIN_MINUTES, records
from stream.demo.estate import Estate, PlannedFinding, build_estate, node_name
from stream.demo.tracegen import Encoding
from stream.demo.traffic import TrafficSpec, trace_records
from stream.models import Asset
from stream.settings import Priority

DEFAULT_START = 1748941200.0  # 2025-06-03T09:00:00Z, fixed so a seed gives the same bytes anywhere
SCAN_SHARE = 0.2  # findings arrive over this first share of the scenario
FRESH_ALERT_S = 7 * 60  # story alerts fire no earlier than this before the end
STREAMS = ("findings", "traces", "alerts")
PARALLEL_FROM = 40  # scale x minutes from which worker processes build the traffic
DEMO_POLICY = Path(__file__).with_name("policy.yaml")  # the accepted risk, muted (hotpath's policy format)
EXPIRES_KEY = "expires:"


@dataclass(frozen=True)
class Expected:
    """What hotpath should make of the scenario by its end (finding uids).

    As built, without a policy: the accepted risks escalate like any finding. :meth:`under_demo_policy`
    is the expectation with the demo's policy in force, which suppresses them instead.
    """

    escalated: dict[str, Priority]  # finding uid -> priority of its escalation at the end
    internet_reached: frozenset[str]  # escalated findings that traffic from the internet exercises
    quiet: frozenset[str]  # exercised, but not enough to escalate
    held: frozenset[str]  # on resources nothing touches: never escalated, however severe
    story_alerts: frozenset[str] = frozenset()  # uids of the alerts on services that touch misconfigured resources
    accepted: dict[str, str] = field(default_factory=dict)  # finding uid -> the demo policy's rule that mutes it
    suppressed: dict[str, str] = field(default_factory=dict)  # the accepted risks muted in this run, by rule

    @property
    def total(self) -> int:
        return len(self.escalated) + len(self.quiet) + len(self.held) + len(self.suppressed)

    def under_demo_policy(self) -> Expected:
        """The outcome with the demo's policy in force: each accepted risk suppressed by its rule, never escalated."""
        return replace(self, escalated={uid: p for uid, p in self.escalated.items() if uid not in self.accepted},
                       internet_reached=self.internet_reached - self.accepted.keys(), suppressed=dict(self.accepted))


@dataclass
class Scenario:
    seed: int
    scale: int
    start: float
    minutes: int
    encoding: Encoding
    assets: list[Asset]
    findings: list[bytes]  # one JSON value per Kafka record
    trace_batches: list[tuple[bytes | None, bytes]]  # (key, value) as the Collector's Kafka exporter writes them
    alerts: list[bytes]
    expected: Expected
    times: dict[str, list[float]] = field(default_factory=dict)  # event time of each record, per stream
    span_count: int = 0

    @property
    def end(self) -> float:
        return self.start + 60 * self.minutes

    def timeline(self) -> Iterator[tuple[float, str, bytes | None, bytes]]:
        """Every finding, trace batch and alert as (event time, stream, key, value), in event-time order."""
        keyed = {
            "findings": [(None, value) for value in self.findings],
            "traces": self.trace_batches,
            "alerts": [(None, value) for value in self.alerts],
        }
        lanes = [_lane(stream, self.times[stream], keyed[stream]) for stream in STREAMS]
        for ts, _, stream, key, value in heapq.merge(*lanes):
            yield ts, stream, key, value

    def write_files(self, folder: str | Path) -> dict[str, list[Path]]:
        """Write the scenario as files ``hotpath replay`` reads; keys are replay's argument names.

        Findings and alerts are NDJSON (one record value per line); traces are one binary OTLP file
        per batch, or OTLP JSON lines in one file when the scenario was built with ``otlp_json``.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        assets = folder / "assets.json"
        assets.write_bytes(orjson.dumps({"assets": [a.to_record() for a in self.assets]}))
        findings = folder / "findings.ndjson"
        findings.write_bytes(b"".join(value + b"\n" for value in self.findings))
        alerts = folder / "alerts.ndjson"
        alerts.write_bytes(b"".join(value + b"\n" for value in self.alerts))
        if self.encoding == "otlp_json":
            traces = [folder / "traces.otlp.jsonl"]
            traces[0].write_bytes(b"".join(value + b"\n" for _, value in self.trace_batches))
        else:
            batches = folder / "traces"
            batches.mkdir(exist_ok=True)
            traces = []
            for index, (_, value) in enumerate(self.trace_batches):
                path = batches / f"batch-{index:05d}.binpb"
                path.write_bytes(value)
                traces.append(path)
        return {"assets": [assets], "findings": [findings], "traces": traces, "alerts": [alerts]}


    def policy_text(self) -> str:
        """The demo's policy file with every mute accepted until a year after the scenario's day.

        The shipped file is dated for the scenario's default day; the demo plays a scenario ending now,
        so the risk it accepts must not have expired already. Comments and layout are kept as written.
        """
        until = a_year_after(datetime.fromtimestamp(self.start, UTC).date()).isoformat()
        lines = []
        for line in DEMO_POLICY.read_text().splitlines(keepends=True):
            indent, key, _ = line.partition(EXPIRES_KEY)
            lines.append(f"{indent}{EXPIRES_KEY} {until}\n" if key and not indent.strip() else line)
        return "".join(lines)

    def write_policy(self, folder: str | Path) -> Path:
        """Write :meth:`policy_text` as ``policy.yaml`` in ``folder`` (for ``hotpath replay --policy``)."""
        path = Path(folder) / DEMO_POLICY.name
        path.write_text(self.policy_text())
        return path


def a_year_after(day: date) -> date:
    """The same day a year later (29 February: 28 February)."""
    try:
        return day.replace(year=day.year + 1)
    except ValueError:
        return day + timedelta(days=365)


def workers_for(scale: int, minutes: int) -> int:
    """Processes worth starting to build a scenario: one per CPU for big ones, else none extra."""
    return (os.cpu_count() or 1) if scale * minutes >= PARALLEL_FROM else 1


def _lane(stream: str, times: list[float], records: list[tuple[bytes | None, bytes]]) -> Iterator[tuple]:
    for index, (ts, (key, value)) in enumerate(zip(times, records, strict=True)):
        yield ts, index, stream, key, value


def start_ending_at(end: float, minutes: int) -> float:
    """The start of a scenario of ``minutes`` that ends at the whole minute of ``end`` (the demo's: now)."""
    return end // 60 * 60 - 60 * minutes


def build_scenario(seed: int = DEFAULT_SEED, scale: int = 1, start: float = DEFAULT_START,
                   minutes: int = DEFAULT_MINUTES, *, encoding: Encoding = "otlp_proto",
                   partition_traces_by_id: bool = False, workers: int = 1) -> Scenario:
    """The whole scenario for one seed; see the module docstring.

    ``workers`` processes build the traffic (see :func:`stream.demo.traffic.trace_records`); the
    result does not depend on it. :func:`workers_for` says how many pay off.
    """
    if scale < 1:
        raise ValueError("scale must be at least 1")
    if minutes < MIN_MINUTES:
        raise ValueError(f"minutes must be at least {MIN_MINUTES}: the story needs traffic before and after its alerts")
    rng = random.Random(f"hotpath-demo:{seed}:{scale}")
    estate = build_estate(rng, scale)
    end = start + 60 * minutes
    findings, finding_times, expected = _findings(estate, rng, start, minutes)
    alerts, alert_times, story_alerts = _alerts(estate, rng, start, end, scale)
    expected = replace(expected, story_alerts=story_alerts)
    batches = trace_records(TrafficSpec(estate, seed, scale, start, minutes, encoding, partition_traces_by_id),
                            workers)
    return Scenario(
        seed=seed, scale=scale, start=start, minutes=minutes, encoding=encoding,
        assets=estate.assets,
        findings=findings,
        trace_batches=[(batch.key, batch.value) for batch in batches],
        alerts=alerts,
        expected=expected,
        times={"findings": finding_times, "traces": [b.event_time for b in batches], "alerts": alert_times},
        span_count=sum(batch.spans for batch in batches),
    )


def _finding_record(planned: PlannedFinding, ts: float, rng: random.Random) -> tuple[str, dict]:
    """(finding uid, record) of one planned finding in its tool's format."""
    if planned.check.tool == "prowler":
        record = records.prowler_finding(planned.check, planned.resource, ts)
        return record["finding_info"]["uid"], record
    record = records.security_hub_event(planned.check, planned.resource, ts, rng)
    return record["detail"]["findings"][0]["Id"], record


def _findings(estate: Estate, rng: random.Random, start: float, minutes: int
              ) -> tuple[list[bytes], list[float], Expected]:
    """The CSPM scan: every planned finding, spread over the first part of the scenario."""
    planned = list(estate.findings)
    rng.shuffle(planned)
    first, last = start + 10.0, start + SCAN_SHARE * 60 * minutes
    step = (last - first) / max(1, len(planned) - 1)
    values, times = [], []
    escalated: dict[str, Priority] = {}
    accepted: dict[str, str] = {}
    internet, quiet, held = set(), set(), set()
    for index, finding in enumerate(planned):
        ts = round(first + index * step, 3)
        uid, record = _finding_record(finding, ts, rng)
        values.append(orjson.dumps(record))
        times.append(ts)
        if finding.outcome == "held":
            held.add(uid)
        elif finding.outcome == "quiet":
            quiet.add(uid)
        else:
            escalated[uid] = finding.outcome
            if finding.internet:
                internet.add(uid)
            if finding.accepted_by:
                accepted[uid] = finding.accepted_by
    return values, times, Expected(escalated, frozenset(internet), frozenset(quiet), frozenset(held),
                                   accepted=accepted)


def _alerts(estate: Estate, rng: random.Random, start: float, end: float, scale: int
            ) -> tuple[list[bytes], list[float], frozenset[str]]:
    """Falco and GuardDuty: two alerts on services the story cares about, the rest noise."""
    span = end - start

    def story_time(share: float) -> float:
        return round(max(start + share * span, end - FRESH_ALERT_S), 3)

    kyc, api = estate.services["kyc"], estate.services["payments-api"]
    timed: list[tuple[float, dict]] = []
    for rule, svc, share, process in (("Contact K8S API Server From Container", kyc, 0.2, "curl"),
                                      ("Terminal shell in container", api, 0.35, "bash")):
        ts = story_time(share)
        timed.append((ts, records.falco_event(rule, ts, namespace=svc.namespace, pod=svc.pod,
                                               image=records.image_of(svc.name), node=node_name(rng),
                                               rng=rng, process=process)))
    story = frozenset(event["uuid"] for _, event in timed)
    ts = round(start + 0.5 * span, 3)
    timed.append((ts, records.guardduty_event(estate.unrelated_instance, ts, rng)))
    for index in range(2 * scale):
        ts = round(start + rng.uniform(0.1, 0.9) * span, 3)
        if index % 2:
            timed.append((ts, records.guardduty_event(estate.unrelated_instance, ts, rng)))
            continue
        namespace, pod = rng.choice(estate.noise_pods)
        timed.append((ts, records.falco_event("Contact K8S API Server From Container", ts, namespace=namespace,
                                              pod=pod, image=records.image_of(pod.split("-")[0]),
                                              node=node_name(rng), rng=rng, process="curl")))
    timed.sort(key=lambda item: item[0])
    return [orjson.dumps(event) for _, event in timed], [ts for ts, _ in timed], story
