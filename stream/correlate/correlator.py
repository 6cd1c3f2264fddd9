"""The correlation core: per-entity state, the join of findings with traffic and alerts, escalations.

Faust has no join operator, so the join is this: every event about an entity (finding, touch,
alert) arrives keyed by that entity; the entity's state holds its open findings, its traffic in
event-time buckets (:mod:`stream.correlate.windows`), its callers and its recent alerts; each event updates
the state and re-scores the entity's findings against it and against the shared
:class:`~stream.entities.context.Context`. A periodic ``tick`` re-scores the entities that are live, so
context that arrives later (an alert on a caller, a longer exposure path) and staleness are seen.

The store is any mutable mapping of entity id to :class:`~stream.correlate.state.EntityState`: a Faust
table (through the state's codec) in the worker, a dict in ``hotpath replay``. State per entity is
bounded: at most ``size/step`` buckets, a few trace ids, callers and alerts.
"""

from __future__ import annotations

import heapq
import sys
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal, cast

from stream.correlate import windows
from stream.correlate.event import (
    AssetContext,
    EscalatedFinding,
    Escalation,
    EvidenceLinks,
    Factors,
    Remediation,
    Routing,
    SuppressedBy,
    SuppressionEnded,
)
from stream.correlate.lifecycle import EscalationState, Transition, Verdict, decide, escalation_uid
from stream.correlate.score import AlertEvidence, Evidence, Score, reasons, score
from stream.correlate.state import AlertSeen, EntityState, FindingState
from stream.entities.context import Context
from stream.models import Asset, Severity, add_trace_ids, epoch_to_rfc3339, parse_rfc3339
from stream.policy.rules import Decision, FindingFacts, Muting, Policy
from stream.redact import mask
from stream.settings import Priority, ScoreSettings, Settings

MAX_CALLERS = 16
MAX_ALERTS = 10
MAX_FINDINGS_PER_ENTITY = 500
MAX_REASON_CHARS = 500

PolicyTime = Literal["wall", "event"]


class Correlator:
    """The join and the judging. ``policy_time`` is the clock a policy's mutes expire by: the wall clock in
    the worker (a mute expires at midnight even when no input arrives), event time in replay (yesterday's
    data is judged by the mutes that applied then)."""

    def __init__(self, settings: Settings, context: Context, store: MutableMapping[str, EntityState],
                 clock: Callable[[], float] = time.time, policy: Policy | None = None,
                 policy_time: PolicyTime = "wall") -> None:
        self.settings = settings
        self.policy = policy
        self.policy_time = policy_time
        self.context = context
        self.store = store
        self.spec = windows.WindowSpec(settings.window_size_s, settings.window_step_s, settings.allowed_lateness_s)
        self.wall_clock = clock
        self.event_clock = windows.LowWatermark()  # the time staleness, sweeps and prunes go by
        self.live: dict[str, int | None] = {}  # entities to re-score on tick -> their partition
        # finding uid -> (partition, escalation state) already published for a finding whose state a
        # crash lost entirely; applied when its redelivered record re-creates it (see reconcile).
        self.published_for_lost: dict[str, tuple[int, EscalationState]] = {}  # by escalation_uid
        self.deferred: dict[str, tuple[float, frozenset[str] | None]] = {}  # entity -> when and what to judge
        # Resources with traffic but no finding, asset or exercised_via -> their partition, least recently
        # touched first: at most settings.max_unclaimed_entities keep their state (see _retain).
        self.unclaimed: dict[str, int | None] = {}
        self.failures: dict[str, str] = {}  # entity -> why judging it failed, for the caller to dead-letter

    @property
    def watermark(self) -> float:
        """Event time as every live source vouches for it (see :class:`stream.correlate.windows.LowWatermark`)."""
        return self.event_clock.value

    # -- events -----------------------------------------------------------------------------

    def process(self, entity: str, record: dict[str, Any], partition: int | None = None,
                position: int | None = None, defer: bool = False) -> list[Escalation]:
        """Apply one event about ``entity`` and return the escalation events it causes.

        ``position`` is the event's offset in its partition: an entity's events all come from one
        partition, so an event at or below the last position applied from that partition is a
        redelivery (after a crash or rebalance) and is skipped, keeping counts and versions exact.
        An event from another partition (the topic's partitions were raised, which moves entities)
        is new whatever its offset, and the entity counts positions in that partition from then on. With ``defer`` the
        entity is judged later, by :meth:`judge_deferred`, once for all the events applied until then.

        An event that cannot be applied or judged is not raised: the entity goes into ``failures``
        with the reason, and its further events wait there too until the caller has parked them.
        """
        if entity in self.failures:
            return []
        # Each event brings its own copy of the id; the store keeps the first, and the bookkeeping below
        # (unclaimed, live, deferred) would keep the latest: one copy serves them all.
        entity = sys.intern(entity)
        try:
            return self._apply(entity, record, partition, position, defer)
        except Exception as exc:  # a hostile or corrupt event: parked with the reason, the others go on
            self._fail(entity, f"applying an event to {entity[:200]} failed", exc)
            self.deferred.pop(entity, None)
            return []

    def _apply(self, entity: str, record: dict[str, Any], partition: int | None, position: int | None,
               defer: bool) -> list[Escalation]:
        state = self.store.get(entity) or EntityState()
        if position is not None:
            if state.position is not None and state.partition == partition and position <= state.position:
                return []
            state.position = position
        state.partition = partition
        kind = record["kind"]
        if kind == "touch":
            eval_at = self._add_touch(state, entity, record)
            self._retain(entity, state, partition)
        elif kind == "alert":
            eval_at = self._add_alert(state, record)
        elif kind == "finding":
            eval_at = self._add_finding(state, record)
            self.unclaimed.pop(entity, None)
        else:
            raise ValueError(f"unknown event kind {kind!r}")
        escalations: list[Escalation] = []
        if eval_at is not None and state.findings:  # nothing to judge on an entity without findings
            only = frozenset((record["uid"],)) if kind == "finding" else None
            if defer:
                self._defer(entity, eval_at, only)
            else:
                escalations = self._judge(entity, state, eval_at, only=only)
        self.store[entity] = state
        if state.findings and self._is_live(state):
            self.live[entity] = partition
        return escalations

    def judge_deferred(self) -> list[Escalation]:
        """Judge each entity whose events were applied with ``defer``, once, at the latest of their times.

        The worker applies a chunk of events and then judges every entity they touched: an entity
        touched by a hundred trace batches in the chunk is scored once, not a hundred times.
        """
        out: list[Escalation] = []
        deferred, self.deferred = self.deferred, {}
        for entity, (at, only) in deferred.items():
            state = self.store.get(entity)
            if state is None or entity in self.failures:
                continue
            escalations = self._judge(entity, state, at, only=only)
            if escalations:
                self.store[entity] = state
                out.extend(escalations)
            if self._is_live(state) and entity not in self.failures:
                self.live[entity] = state.partition
        return out

    def _defer(self, entity: str, at: float, only: frozenset[str] | None) -> None:
        known = self.deferred.get(entity)
        if known is not None:
            at = max(at, known[0])
            only = None if only is None or known[1] is None else only | known[1]
        self.deferred[entity] = (at, only)

    def tick(self, partition: int | None = None) -> list[Escalation]:
        """Re-score live entities (of one partition) with the latest context; resolve stale ones."""
        out: list[Escalation] = []
        for entity in sorted(e for e, p in self.live.items() if partition is None or p == partition):
            state = self.store.get(entity)
            if state is None:
                del self.live[entity]
                continue
            escalations = self._judge(entity, state, state.clock or self.watermark)
            if escalations:
                self.store[entity] = state
                out.extend(escalations)
            if not self._is_live(state) or entity in self.failures:
                del self.live[entity]
        return out

    def sweep(self, partition: int | None = None) -> int:
        """Forget entities (of one partition) with no findings and no traffic within the stale horizon.

        Traffic on an entity nobody has a finding about is kept only as long as a finding
        arriving later could still be judged by it, so state stays bounded as entities churn.
        """
        horizon = self.watermark - self._stale_after()
        idle = [entity for entity, state in self.store.items()
                if (partition is None or state.partition == partition) and not state.findings
                and (state.clock is None or state.clock < horizon)]
        for entity in idle:
            del self.store[entity]
            self.unclaimed.pop(entity, None)
        return len(idle)

    def restore_live(self, partition: int | None = None) -> None:
        """After recovery, find the entities (of one partition) worth ticking again, in one pass, and the
        unclaimed ones, oldest first, to keep within their bound.

        A state written before times were checked may hold a forged future: it is clamped to the wall
        clock plus the allowed skew, and the partition's clocks vouch for its time like any source.
        """
        latest = self.wall_clock() + self.settings.max_clock_skew_s
        clocks: list[float] = []
        unclaimed = []
        for entity, state in self.store.items():
            if partition is None or state.partition == partition:
                if clamp_state(state, latest):
                    self.store[entity] = state
                if state.clock is not None:
                    clocks.append(state.clock)
                if state.findings and self._is_live(state):
                    self.live[entity] = state.partition
                if self._unclaimed(entity, state):
                    unclaimed.append((state.clock or float("-inf"), entity, state.partition))
        for clock in heapq.nlargest(self.event_clock.quorum, set(clocks)):
            self.event_clock.observe(("restored", partition), clock)
        for _, entity, entity_partition in sorted(unclaimed):
            self.unclaimed[entity] = entity_partition
        self._evict_unclaimed()

    def forget_partitions(self, partitions: set[int]) -> None:
        """Another worker owns these partitions now: stop ticking their entities and counting their time."""
        self.event_clock.forget(lambda source: source[1] in partitions)
        for entity in [e for e, p in self.live.items() if p in partitions]:
            del self.live[entity]
        for uid in [u for u, (p, _) in self.published_for_lost.items() if p in partitions]:
            del self.published_for_lost[uid]
        for entity in [e for e, p in self.unclaimed.items() if p in partitions]:
            del self.unclaimed[entity]  # its state is the new owner's now: never evict it from here

    def reconcile(self, partition: int, published: Iterable[dict[str, Any]], owns: Callable[[str], bool]) -> int:
        """Raise the recovered escalation states of one partition's findings to what was published.

        ``published`` are escalation events already on the escalations topic. A crash can lose the
        state write that recorded one (see stream.correlate.recovery); the redelivered event must then find its
        version taken, not emit it again. Events are published masked, so they are matched by their
        ``escalation_uid`` (a hash of the raw finding uid); one whose finding is in no state of the
        partition is kept for when it comes back if ``owns(resource)`` says its entity is ours.
        Returns how many findings were raised.
        """
        ours = {escalation_uid(uid): (entity, uid) for entity, state in self.store.items()
                if state.partition == partition for uid in state.findings}
        raised = 0
        for event in published:
            key = event["escalation_uid"]
            esc = EscalationState(event["version"], event["state"] != "resolved", event["priority"], event["score"],
                                  (event.get("suppressed_by") or {}).get("rule_id"),
                                  (event.get("suppression_ended") or {}).get("why") == "attack")
            if key in ours:
                entity, uid = ours[key]
                state = self.store[entity]
                finding = state.findings[uid]
                if finding.escalation.version >= esc.version:
                    continue
                finding.escalation = esc
                self.store[entity] = state
            elif owns(event["resource"]):
                lost = self.published_for_lost.get(key)
                if lost is not None and lost[1].version >= esc.version:
                    continue
                self.published_for_lost[key] = (partition, esc)
            else:
                continue
            raised += 1
        return raised

    def _is_live(self, state: EntityState) -> bool:
        active = any(f.escalation.active for f in state.findings.values())
        recent = state.clock is not None and state.clock >= self.watermark - self._stale_after()
        return active or recent

    def _stale_after(self) -> float:
        return self.settings.stale_windows * self.settings.window_size_s

    def _advance(self, state: EntityState, kind: str, ts: float) -> None:
        if state.clock is None or ts > state.clock:
            state.clock = ts
        self.event_clock.observe((kind, state.partition), ts)

    def _add_touch(self, state: EntityState, entity: str, touch: dict[str, Any]) -> float | None:
        """Fold a touch into the entity's windows; returns when to judge it, None when too late."""
        first, last = parse_rfc3339(touch["first_seen"]), parse_rfc3339(touch["last_seen"])
        now = max(state.clock or last, last)
        if not windows.add(state.buckets, self.spec, last, touch["spans"], touch["internet_spans"], now):
            return None
        self._advance(state, "touch", last)
        state.last_exercised = max(state.last_exercised or last, last)
        state.first_seen = min(state.first_seen or first, first)
        for caller in touch["services"]:
            _remember(state.callers, caller, last, MAX_CALLERS)
        if touch.get("via"):
            _remember(state.via, touch["via"], last, MAX_CALLERS)
        add_trace_ids(state.traces, touch["trace_ids"], self.settings.max_trace_ids)
        # A late touch is judged in the window it belongs to, so it still counts.
        return last

    def _retain(self, entity: str, state: EntityState, partition: int | None) -> None:
        """Keep traffic state only where a finding can use it, whatever names traces make up.

        Services (the nodes of exposure paths), assets, what assets are exercised via and entities
        with findings keep theirs until swept. Any other resource is kept among the latest
        ``max_unclaimed_entities`` touched, so a finding arriving shortly after its traffic still
        sees it, and the least recently touched beyond that are forgotten.
        """
        if not self._unclaimed(entity, state):
            return
        self.unclaimed.pop(entity, None)
        self.unclaimed[entity] = partition
        self._evict_unclaimed()

    def _unclaimed(self, entity: str, state: EntityState) -> bool:
        return not state.findings and not self.context.resolver.lies_on_paths(entity)

    def _evict_unclaimed(self) -> None:
        while len(self.unclaimed) > self.settings.max_unclaimed_entities:
            entity = next(iter(self.unclaimed))
            del self.unclaimed[entity]
            state = self.store.get(entity)
            if state is not None and self._unclaimed(entity, state):
                del self.store[entity]

    def _add_alert(self, state: EntityState, alert: dict[str, Any]) -> float:
        observed = parse_rfc3339(alert["observed_at"])
        if all(seen.uid != alert["uid"] for seen in state.alerts):
            state.alerts.append(AlertSeen(observed, alert["uid"], alert["source"], alert["rule"], alert["severity"],
                                          alert.get("subject") or ""))
            state.alerts.sort()
            del state.alerts[: max(0, len(state.alerts) - MAX_ALERTS)]
        self._advance(state, "alert", observed)
        return state.clock

    def _add_finding(self, state: EntityState, finding: dict[str, Any]) -> float | None:
        """Record a finding's latest status; returns when to judge it, None when nothing changed.

        A record older than the one already applied (a re-sent or reordered scan) is ignored, so
        an old "open" can never re-open a finding the source has since resolved.
        """
        findings = state.findings
        known = findings.get(finding["uid"])
        observed = parse_rfc3339(finding["observed_at"])
        if known is None and finding["status"] == "resolved":
            return None  # never seen open: nothing to resolve, nothing to keep
        if known is not None and observed < parse_rfc3339(known.observed_at):
            return None
        if known:
            escalation = known.escalation
        else:
            lost = self.published_for_lost.pop(escalation_uid(finding["uid"]), None)
            escalation = lost[1] if lost else EscalationState()
        findings[finding["uid"]] = FindingState(
            finding["source"], finding["check"], finding["title"], finding["severity"], finding["status"],
            finding["resources"], finding["account"], finding["region"], finding["observed_at"], escalation,
            finding.get("compliance") or {}, finding.get("remediation"))
        if len(findings) > MAX_FINDINGS_PER_ENTITY:
            _evict_resolved(findings)
        return state.clock if state.clock is not None else observed

    # -- evaluation -------------------------------------------------------------------------

    def _judge(self, entity: str, state: EntityState, at: float,
               only: frozenset[str] | None = None) -> list[Escalation]:
        """:meth:`_evaluate`, or nothing when it fails: the reason waits in ``failures`` for the caller.

        One entity's bad data must not stop the others of a chunk from being judged and published;
        :meth:`_evaluate` changes the state only once every event is built, so a failure changes nothing.
        """
        try:
            return self._evaluate(entity, state, at, only)
        except Exception as exc:  # whatever broke, the entity's records are parked with the reason
            self._fail(entity, f"judging {entity[:200]} failed", exc)
            return []

    def _fail(self, entity: str, what: str, exc: Exception) -> None:
        self.failures[entity] = f"{what}: {type(exc).__name__}: {str(exc)[:MAX_REASON_CHARS]}"

    def _evaluate(self, entity: str, state: EntityState, at: float,
                  only: frozenset[str] | None = None) -> list[Escalation]:
        evidence_base = self._evidence(entity, state, at)
        stale = (state.last_exercised is None or self.watermark - state.last_exercised > self._stale_after())
        asset = self.context.resolver.asset(entity)
        policy_at = datetime.fromtimestamp(self.wall_clock() if self.policy_time == "wall" else at, UTC)
        decided: list[tuple[FindingState, EscalationState, Escalation]] = []
        for uid, finding in list(state.findings.items()):
            if only is not None and uid not in only:
                continue
            prev = finding.escalation
            if not prev.active and finding.status == "resolved":
                continue
            evidence = _with_severity(evidence_base, finding.severity)
            result = score(evidence, self.settings.score)
            decision = None
            if self.policy is not None:
                facts = _facts(entity, finding, asset, result.priority, evidence.attacked_directly)
                evidence, result, decision = judge_by_policy(self.policy, facts, policy_at, (evidence, result),
                                                             evidence_base, self.settings.score)
            live = evidence.exercised or bool(evidence.alerts)
            priority = decision.priority if decision else result.priority
            verdict = Verdict(open=finding.status == "open", priority=priority, score=result.value, live=live,
                              stale=stale and not evidence.attacked_directly, muted_by=_mute_in_force(decision, prev),
                              lifted=bool(decision and decision.broken_through))
            transition, new = decide(prev, verdict, self.settings.escalation_threshold)
            if transition is None:
                continue
            judged = Judged(transition, prev, new, evidence, result, decision)
            why = policy_reasons(judged) + reasons(evidence, result)
            if transition == "resolved":
                why = [self._resolution_reason(finding, stale)] + why
            decided.append((finding, new, self._event(uid, entity, finding, judged, why, state, at)))
        # Every event is built: only now may the findings record the versions they report.
        for finding, new, _ in decided:
            finding.escalation = new
        return [escalation for _, _, escalation in decided]

    def _resolution_reason(self, finding: FindingState, stale: bool) -> str:
        if finding.status == "resolved":
            return f"resolved at the source ({finding.source})"
        minutes = round(self._stale_after() / 60)
        return f"not exercised for {self.settings.stale_windows} windows ({minutes} min)"

    def _evidence(self, entity: str, state: EntityState, at: float) -> Evidence:
        spans, internet = windows.totals(state.buckets, self.spec, at)
        since = self.spec.window_start(at)
        asset = self.context.resolver.asset(entity)
        path: tuple[str, ...] = ()
        if spans:
            path = self.context.exposure_path(entity, since, state.callers)
            if not path:
                for via in sorted(v for v, seen in state.via.items() if seen >= since):
                    via_path = self.context.exposure_path(via, since)
                    if via_path:
                        path = via_path + (entity,)
                        break
        direct = internet > 0 or path == (entity,)
        alert_since = at - self.settings.window_size_s - self.settings.allowed_lateness_s
        alerts = [AlertEvidence(a.uid, a.source, a.rule, a.severity, at - a.observed_at, a.subject or entity, True)
                  for a in state.alerts if a.observed_at >= alert_since]
        seen = {a.uid for a in alerts}
        # Services exercising the entity: its callers, what it is exercised via, and the exposure path.
        neighbours = {c for c, last in state.callers.items() if last >= since} | {
            v for v, last in state.via.items() if last >= since} | set(path[:-1])
        for neighbour, on_entity in [(entity, True)] + [(n, False) for n in sorted(neighbours - {entity})]:
            for fact in self.context.alerts_on(neighbour, alert_since):
                if fact.uid not in seen:
                    seen.add(fact.uid)
                    alerts.append(AlertEvidence(fact.uid, fact.source, fact.rule, fact.severity,
                                                at - fact.observed_at, fact.subject, on_entity))
        return Evidence(
            severity="informational",
            span_count=spans,
            internet_direct=direct,
            exposure_path=() if direct else path,
            alerts=tuple(alerts),
            data_classification=asset.tags.data_classification if asset else None,
            criticality=asset.tags.criticality if asset else None,
        )

    def _event(self, uid: str, entity: str, finding: FindingState, judged: Judged, why: list[str],
               state: EntityState, at: float) -> Escalation:
        """The event, built from values already checked (no validation: the topic carries it whole)."""
        transition, prev, esc, evidence, result = (judged.transition, judged.prev, judged.new, judged.evidence,
                                                   judged.result)
        asset = self.context.resolver.asset(entity)
        changed = {"previous_priority": prev.priority} if transition == "updated" else {}  # sinks show the change
        return Escalation.model_construct(
            finding_uid=uid,
            escalation_uid=escalation_uid(uid),
            state=transition,
            version=esc.version,
            priority=esc.priority,
            **changed,
            score=esc.score,
            resource=entity,
            finding=EscalatedFinding.model_construct(
                source=finding.source, check=finding.check, title=finding.title, severity=finding.severity,
                resources=finding.resources, account=finding.account, region=finding.region,
                compliance=finding.compliance,
                remediation=Remediation.model_construct(**finding.remediation) if finding.remediation else None),
            factors=Factors.model_construct(
                severity=evidence.severity,  # as scored: a policy may override the scanner's
                exercised=evidence.exercised,
                span_count=evidence.span_count,
                internet_exposed=evidence.internet_exposed,
                exposure_path=list(evidence.exposure_path),
                under_attack=bool(evidence.alerts),
                alerts=len(evidence.alerts),
                data_classification=evidence.data_classification,
                criticality=evidence.criticality,
                held=result.held,
                contributions=result.contributions),
            reasons=[mask(reason) for reason in why],  # alert subjects and names from traffic
            evidence=EvidenceLinks.model_construct(
                trace_ids=list(state.traces),
                alert_uids=[a.uid for a in evidence.alerts],
                first_seen=_rfc(state.first_seen),
                last_seen=_rfc(state.last_exercised)),
            asset=AssetContext.model_construct(
                owner=asset.tags.owner if asset else None,
                environment=asset.tags.environment if asset else None,
                service=asset.service if asset else None),
            event_time=epoch_to_rfc3339(at),
            emitted_at=epoch_to_rfc3339(self.wall_clock()),
            policy_version=self.policy.digest if self.policy is not None else None,
            **self._policy_fields(judged),
        )

    def _policy_fields(self, judged: Judged) -> dict[str, Any]:
        """``suppressed_by``, ``suppression_ended`` and ``routing``, on the events they belong to only."""
        fields: dict[str, Any] = {}
        decision = judged.decision
        if decision is None or self.policy is None:
            return fields
        if judged.transition == "suppressed" and decision.muted_by is not None:
            fields["suppressed_by"] = suppressed_by(decision.muted_by, self.policy.digest)
        ended = suppression_ended(judged)
        if ended is not None:
            fields["suppression_ended"] = ended
        if decision.routing is not None:
            fields["routing"] = Routing.model_construct(sinks=list(decision.routing.sinks),
                                                        opsgenie_team=decision.routing.opsgenie_team)
        return fields


@dataclass(frozen=True, slots=True)
class Judged:
    """One finding's judgement: the transition, the states around it, what it was scored on, the policy's say."""

    transition: Transition
    prev: EscalationState
    new: EscalationState
    evidence: Evidence
    result: Score
    decision: Decision | None


def judge_by_policy(policy: Policy, facts: FindingFacts, at: datetime, scored: tuple[Evidence, Score],
                    evidence_base: Evidence, weights: ScoreSettings) -> tuple[Evidence, Score, Decision]:
    """The policy's decision on a finding ``scored`` with its scanner's severity; a severity override is
    scored again, and the priority that gives is what the policy's floors, caps and routes judge."""
    decision = policy.decide(facts, at)
    if decision.severity == facts.severity:
        return *scored, decision
    evidence = _with_severity(evidence_base, decision.severity)
    result = score(evidence, weights)
    return evidence, result, policy.decide(replace(facts, priority=result.priority), at)


def _mute_in_force(decision: Decision | None, prev: EscalationState) -> str | None:
    """The id of the mute that suppresses the finding now, if any. An escalation an attack lifted a mute for
    keeps it lifted while it lasts (see :mod:`stream.correlate.lifecycle`), from every mute that yields to attacks."""
    muting = decision.muted_by if decision else None
    if muting is None or (prev.active and prev.lifted and muting.rule.break_on_attack):
        return None
    return muting.rule.id


def _facts(entity: str, finding: FindingState, asset: Asset | None, priority: Priority,
           attacked_directly: bool) -> FindingFacts:
    """What the policy reads of a finding: its own fields, and the tags, owner and environment of its asset."""
    tags = asset_tags(asset)
    return FindingFacts(check=finding.check, resource=entity, severity=cast(Severity, finding.severity),
                        priority=priority, account=finding.account, region=finding.region,
                        tags=tags, environment=tags.get("environment"), owner=tags.get("owner"),
                        attacked_directly=attacked_directly)


def asset_tags(asset: Asset | None) -> Mapping[str, str]:
    """The asset's tags as text (``true``/``false`` for flags), the ones it leaves unset left out."""
    if asset is None:
        return {}
    values = asset.tags.model_dump(exclude_none=True)
    return {key: (str(value).lower() if isinstance(value, bool) else str(value)) for key, value in values.items()}


def suppressed_by(muting: Muting, policy_version: str) -> SuppressedBy:
    rule = muting.rule
    return SuppressedBy.model_construct(
        rule_id=mask(rule.id), source=mask(muting.source), policy_version=policy_version, owner=mask(rule.owner),
        reason=mask(rule.reason), ticket=mask(rule.ticket) if rule.ticket else None,
        expires=rule.expires.isoformat() if rule.expires else None)


def suppression_ended(judged: Judged) -> SuppressionEnded | None:
    """On the event that ends a suppression (the finding escalates again): which rule, and why."""
    rule_id = judged.prev.muted_by
    if judged.transition != "escalated" or not judged.prev.suppressed or rule_id is None:
        return None
    decision = judged.decision
    why = "removed"
    if decision is not None and any(m.rule.id == rule_id for m in decision.broken_through):
        why = "attack"
    elif decision is not None and any(m.rule.id == rule_id for m in decision.expired):
        why = "expired"
    return SuppressionEnded.model_construct(rule_id=mask(rule_id), why=why)


def policy_reasons(judged: Judged) -> list[str]:
    """The policy's part of an event's reasons, before the evidence's: the mute, its end (``removed`` when the
    policy dropped the rule or it no longer matches), and what the overrides changed."""
    decision, out = judged.decision, []
    if decision is None:
        return out
    muting = decision.muted_by
    if judged.transition == "suppressed" and muting is not None:
        until = f" until {muting.rule.expires.isoformat()}" if muting.rule.expires else ""
        out.append(f"suppressed by rule {muting.rule.id} ({muting.rule.owner}){until}: {muting.rule.reason}")
    ended = suppression_ended(judged)
    if ended is not None:
        out.append({"expired": f"mute rule {ended.rule_id} expired",
                    "removed": f"mute rule {ended.rule_id} no longer applies to it",
                    "attack": f"an attack on the resource itself broke through mute rule {ended.rule_id}"}[ended.why])
    return out + list(decision.notes)


def clamp_state(state: EntityState, latest: float) -> bool:
    """Pull every time of a restored ``state`` back to ``latest`` at most; True when it held a later one.

    Every time a state keeps is at most its ``clock`` (the latest traffic or alert on it), so only a
    state whose clock is past ``latest`` needs a look.
    """
    if state.clock is None or state.clock <= latest:
        return False
    state.clock = min(state.clock, latest)
    if state.last_exercised is not None:
        state.last_exercised = min(state.last_exercised, latest)
    if state.first_seen is not None:
        state.first_seen = min(state.first_seen, latest)
    state.buckets = [bucket for bucket in state.buckets if bucket.start <= latest]
    state.alerts = [alert for alert in state.alerts if alert.observed_at <= latest]
    for seen in (state.callers, state.via):
        for key, ts in seen.items():
            seen[key] = min(ts, latest)
    return True


def _with_severity(base: Evidence, severity: str) -> Evidence:
    return Evidence(severity, base.span_count, base.internet_direct, base.exposure_path, base.alerts,
                    base.data_classification, base.criticality)


def _remember(seen: dict[str, float], key: str, ts: float, limit: int) -> None:
    if ts > seen.get(key, float("-inf")):
        seen[key] = ts
    if len(seen) > limit:
        del seen[min(seen, key=seen.__getitem__)]


def _evict_resolved(findings: dict[str, FindingState]) -> None:
    for uid in [u for u, f in findings.items() if f.status == "resolved"]:
        del findings[uid]
        if len(findings) <= MAX_FINDINGS_PER_ENTITY:
            return


def _rfc(ts: float | None) -> str | None:
    return None if ts is None else epoch_to_rfc3339(ts)
