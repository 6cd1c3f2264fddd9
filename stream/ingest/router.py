"""Routing decoded records to entities: what the stateless ingest stage does after decoding.

Each record becomes events keyed by entity id (so one worker sees everything about an entity, in
order) and context facts that every worker needs (see :mod:`stream.entities.context`). The same
router serves the Kafka worker, which sends events to ``hotpath.entity-events`` and facts to
``hotpath.context``, and ``hotpath replay``, which feeds both straight back in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stream.entities.context import Context
from stream.models import Alert, Asset, Finding, Touch, TraceBatch, add_trace_ids, bucket_start

Event = tuple[str, dict[str, Any]]  # (entity id, normalized record as a dict)
# The trace messages a worker takes together are merged and routed in parts of at most this many touches:
# enough that a chunk of the usual messages (dozens of touches each) is one part, so an entity costs one
# event per chunk and window step (a quarter of the CPU per event that parts of 1024 cost on the
# benchmark's traffic), while the touches held at once stay bounded whatever the messages reach.
TRACE_PART_MAX_TOUCHES = 4096


@dataclass(slots=True)
class Routed:
    events: list[Event] = field(default_factory=list)
    facts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


class Router:
    """Turns normalized records into entity events and (de-duplicated) context facts.

    Facts are applied to the local context at once, so this worker resolves with them before the
    round trip through Kafka; a fact is re-published only when it is new or its ``last_seen`` moved
    on by a window step, which keeps the context topic small however busy the traces are. What any
    worker published counts (:meth:`heard`): several workers sharing the traffic publish a fact about
    once between them, not once each, and every worker reads the topic in full.
    """

    def __init__(self, context: Context, refresh_s: float) -> None:
        self.context = context
        self.refresh_s = refresh_s
        self._published: dict[str, float] = {}

    def finding(self, finding: Finding) -> Routed:
        # A finding is owned by its first resource, so exactly one worker versions its escalations.
        return Routed(events=[(finding.resources[0], finding.to_record())])

    def alert(self, alert: Alert) -> Routed:
        routed = Routed()
        record = alert.to_record()
        for entity in alert.entities:
            routed.events.append((entity, record))
            self._fact(routed, *Context.alert_fact(entity, alert), seen=alert.event_time, fresh=True)
        return routed

    def asset(self, asset: Asset) -> Routed:
        self.context.add_asset(asset)
        return Routed()

    def traces(self, batch: TraceBatch) -> Routed:
        routed = Routed()
        resolver = self.context.resolver
        seen = batch.last_seen if batch.last_seen is not None else max(
            (touch.last_seen for touch in batch.touches), default=None)
        for pod, service in batch.pods.items() if seen is not None else ():
            # Republished as it is seen again, as edges are, so that every worker prunes the pods gone.
            key, value = Context.pod_fact(pod, service, seen)
            if resolver.learn_pod(pod, service, seen):
                self._published.pop(key, None)  # new, or moved to another service: say so at once
            self._fact(routed, key, value, seen=seen)
        for touch in batch.touches:
            record = touch.to_record()
            routed.events.append((touch.entity, record))
            for watcher in resolver.exercised_by(touch.entity):
                routed.events.append((watcher, {**record, "entity": watcher, "via": touch.entity}))
            if not resolver.lies_on_paths(touch.entity):
                continue  # its owner's state holds its callers and internet traffic (see Correlator)
            for caller in touch.services:
                self._fact(routed, *Context.edge_fact(caller, touch.entity, touch.last_seen), seen=touch.last_seen)
            if touch.internet_spans:
                self._fact(routed, *Context.internet_fact(touch.entity, touch.last_seen), seen=touch.last_seen)
        return routed

    def heard(self, key: str, value: dict[str, Any]) -> None:
        """A fact read back from the shared context topic, this worker's or another's: as published at its
        ``last_seen``, so that workers reading shares of the same traffic do not each publish it again."""
        seen = value.get("last_seen")
        if isinstance(seen, int | float) and seen > self._published.get(key, float("-inf")):
            self._published[key] = seen

    def prune(self, before: float) -> None:
        """Forget which facts were published before ``before`` (they have aged out of the context)."""
        for key in [k for k, seen in self._published.items() if seen < before]:
            del self._published[key]

    def _fact(self, routed: Routed, key: str, value: dict[str, Any], *, seen: float, fresh: bool = False) -> None:
        last = self._published.get(key)
        if last is not None and (fresh or seen < last + self.refresh_s):
            return
        self._published[key] = seen
        self.context.apply(key, value)
        routed.facts.append((key, value))


def merge_trace_batches(batches: list[TraceBatch], step_s: float, max_trace_ids: int) -> TraceBatch:
    """Several trace messages as one batch: the touches of one entity within one window step added up.

    The worker routes the messages it takes together as one, so an entity that every message
    reaches costs one event, not one per message. Nothing the correlator decides changes: a touch
    counts in the step bucket of its last span, and callers, paths and windows are compared at
    step boundaries, so touches of one entity in one step say together what they say one after
    the other. Trace ids keep the latest ``max_trace_ids``, as the entity's state does.
    """
    if len(batches) == 1:
        return batches[0]
    merged: dict[tuple[str, float], Touch] = {}
    pods: dict[str, str] = {}
    for batch in batches:
        pods.update(batch.pods)
        for touch in batch.touches:
            key = (touch.entity, bucket_start(touch.last_seen, step_s))
            known = merged.get(key)
            if known is None:
                # a copy the merge may change (built directly: dataclasses.replace costs several times more)
                merged[key] = Touch(touch.entity, list(touch.services), touch.spans, touch.errors,
                                    touch.internet_spans, touch.first_seen, touch.last_seen, list(touch.trace_ids))
                continue
            known.spans += touch.spans
            known.errors += touch.errors
            known.internet_spans += touch.internet_spans
            known.first_seen = min(known.first_seen, touch.first_seen)
            known.last_seen = max(known.last_seen, touch.last_seen)
            known.services += [service for service in touch.services if service not in known.services]
            add_trace_ids(known.trace_ids, touch.trace_ids, max_trace_ids)
    seen = [batch.last_seen for batch in batches if batch.last_seen is not None]
    return TraceBatch(list(merged.values()), pods, last_seen=max(seen, default=None))


class TraceParts:
    """Decoded trace messages gathered into parts of at most ``max_touches`` touches, each merged
    (:func:`merge_trace_batches`) and routed as one batch as soon as it is full, and the rest at the end."""

    def __init__(self, router: Router, step_s: float, max_trace_ids: int,
                 max_touches: int = TRACE_PART_MAX_TOUCHES) -> None:
        self.router = router
        self.step_s = step_s
        self.max_trace_ids = max_trace_ids
        self.max_touches = max_touches
        self._batches: list[TraceBatch] = []
        self._touches = 0
        self.spans = 0  # spans of the batches taken so far, counted once per entity a span touches

    def add(self, batch: TraceBatch) -> Routed | None:
        """Take one message's batch; the routed part once the part holds ``max_touches`` touches."""
        self._batches.append(batch)
        self._touches += len(batch.touches)
        self.spans += sum(touch.spans for touch in batch.touches)
        return self.flush() if self._touches >= self.max_touches else None

    def flush(self) -> Routed | None:
        """The part gathered so far, routed (None when there is none)."""
        if not self._batches:
            return None
        merged = merge_trace_batches(self._batches, self.step_s, self.max_trace_ids)
        self._batches, self._touches = [], 0
        return self.router.traces(merged)
