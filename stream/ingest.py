"""Routing decoded records to entities: what the stateless ingest stage does after decoding.

Each record becomes events keyed by entity id (so one worker sees everything about an entity, in
order) and context facts that every worker needs (see :mod:`stream.context`). The same router
serves the Kafka worker, which sends events to ``hotpath.entity-events`` and facts to
``hotpath.context``, and ``hotpath replay``, which feeds both straight back in.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from stream import windows
from stream.context import Context
from stream.correlate import add_trace_ids
from stream.formats.alerts import decode_alerts
from stream.formats.assets import decode_assets
from stream.formats.findings import decode_findings
from stream.formats.limits import DecodeLimits
from stream.formats.otlp import decode_traces, detect_encoding
from stream.models import Alert, Asset, DecodeError, Finding, Touch, TraceBatch

Event = tuple[str, dict[str, Any]]  # (entity id, normalized record as a dict)
EVENTS_PER_RECORD = 1 << 20  # room for each event of one record in the position the correlator dedups on


@dataclass(slots=True)
class Routed:
    events: list[Event] = field(default_factory=list)
    facts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


class Router:
    """Turns normalized records into entity events and (de-duplicated) context facts.

    Facts are applied to the local context at once, so this worker resolves with them before the
    round trip through Kafka; a fact is re-published only when it is new or its ``last_seen`` moved
    on by a window step, which keeps the context topic small however busy the traces are.
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


class Ingest:
    """Decode a raw Kafka value of one input stream and route what it holds.

    The one place the worker turns bytes into entity events; raises only DecodeError, which the
    caller turns into a dead-letter record.
    """

    def __init__(self, router: Router, limits: DecodeLimits, traces_encoding: str = "auto") -> None:
        self.router = router
        self.limits = limits
        self.traces_encoding = traces_encoding
        self._json_limits = (limits.max_record_bytes, limits.max_json_depth)

    def __call__(self, stream: str, value: bytes | None) -> Routed:
        if value is None:
            if stream == "assets":
                return Routed()  # a tombstone: the context feed forgets the asset
            raise DecodeError("empty record (no value)")
        if stream == "traces":
            return self.router.traces(self.decode_traces(value))
        routed = Routed()
        if stream == "findings":
            findings = decode_findings(value, *self._json_limits, self.limits.finding_time_bounds())
            parts = [self.router.finding(f) for f in findings]
        elif stream == "alerts":
            alerts = decode_alerts(value, self.router.context.resolver, *self._json_limits, self.limits.time_bounds())
            parts = [self.router.alert(a) for a in alerts]
        elif stream == "assets":
            parts = [self.router.asset(a) for a in decode_assets(value, *self._json_limits)]
        else:
            raise ValueError(f"unknown input stream {stream!r}")
        for part in parts:
            routed.events += part.events
            routed.facts += part.facts
        return routed

    def decode_traces(self, value: bytes) -> TraceBatch:
        """One trace message folded into touches, for callers that route several messages at once."""
        encoding = detect_encoding(value) if self.traces_encoding == "auto" else self.traces_encoding
        return decode_traces(value, self.router.context.resolver, encoding=encoding, limits=self.limits)


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
            key = (touch.entity, windows.bucket_start(touch.last_seen, step_s))
            known = merged.get(key)
            if known is None:
                merged[key] = replace(touch, services=list(touch.services), trace_ids=list(touch.trace_ids))
                continue
            known.spans += touch.spans
            known.errors += touch.errors
            known.internet_spans += touch.internet_spans
            known.first_seen = min(known.first_seen, touch.first_seen)
            known.last_seen = max(known.last_seen, touch.last_seen)
            known.services += [service for service in touch.services if service not in known.services]
            add_trace_ids(known.trace_ids, touch.trace_ids, max_trace_ids)
    seen = [batch.last_seen for batch in batches if batch.last_seen is not None]
    return TraceBatch(list(merged.values()), pods, sum(batch.span_count for batch in batches),
                      last_seen=max(seen, default=None))


class EntityPartitioner:
    """Groups one input record's entity events by the partition of ``hotpath.entity-events`` they belong to.

    A trace batch reaches dozens of entities; one Kafka record per partition instead of one per
    entity is what keeps the worker's cost per batch, not per entity. The partition is the one a
    record keyed by the entity id would get from aiokafka (Faust) or from confluent-kafka's
    ``murmur2_random``, so each entity's events and its state stay on one partition. The pure-Python
    murmur2 costs microseconds, and the same entities recur in every batch: results are cached.
    """

    def __init__(self, partitions: int, max_cached: int = 100_000) -> None:
        from aiokafka.partitioner import murmur2

        self.partitions = partitions
        self.max_cached = max_cached
        self._murmur2 = murmur2
        self._partition_of: dict[str, int] = {}

    def partition(self, entity: str) -> int:
        partition = self._partition_of.get(entity)
        if partition is None:
            if len(self._partition_of) >= self.max_cached:
                self._partition_of.clear()
            partition = (self._murmur2(entity.encode()) & 0x7FFFFFFF) % self.partitions
            self._partition_of[entity] = partition
        return partition

    def split(self, events: list[Event]) -> dict[int, list[Event]]:
        """The events per partition, each partition's in their original order."""
        by_partition: dict[int, list[Event]] = {}
        for event in events:
            partition = self.partition(event[0])
            if partition in by_partition:
                by_partition[partition].append(event)
            else:
                by_partition[partition] = [event]
        return by_partition


def encode_events(events: list[Event], max_bytes: int) -> tuple[list[bytes], list[Event]]:
    """``hotpath.entity-events`` record values ``[[entity, record], ...]`` of at most ``max_bytes`` each,
    in order, and the events too large to fit in any.

    A batch reaching thousands of entities would otherwise make a record over the broker's
    ``message.max.bytes`` (1 MB) and the producer's request size: it is split between events. The
    usual batch is one record, encoded once.
    """
    whole = orjson.dumps(events)
    if len(whole) <= max_bytes:
        return [whole], []
    records: list[bytes] = []
    too_large: list[Event] = []
    part: list[bytes] = []
    size = 2  # the brackets
    for event in events:
        encoded = orjson.dumps(event)
        if len(encoded) + 2 > max_bytes:
            too_large.append(event)
            continue
        if part and size + 1 + len(encoded) > max_bytes:
            records.append(b"[" + b",".join(part) + b"]")
            part, size = [], 2
        size += len(encoded) + (1 if part else 0)
        part.append(encoded)
    if part:
        records.append(b"[" + b",".join(part) + b"]")
    return records, too_large


def event_position(offset: int, index: int) -> int:
    """Where the ``index``-th event of the record at ``offset`` stands in its partition (for redelivery checks)."""
    return offset * EVENTS_PER_RECORD + index
