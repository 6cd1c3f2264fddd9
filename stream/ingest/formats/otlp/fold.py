"""One message's spans folded into one touch per entity: the fold both wire walks feed.

A walk yields one :data:`SpanRow` per span: the span group table of its resource and kind, its
wanted attribute values still in the walk's form, its caller attributes, and the few fields every
span moves. What a span touches depends only on its resource, kind and wanted values, so it is
worked out once per distinct combination (:func:`~.touches.span_targets`) and kept across messages
in the decoder's :class:`FoldCaches`; only the asset-alias lookups are redone per message. Per span
only the counters of its :class:`SpanGroup` move.

What a message may make hotpath remember is capped, since every entity named becomes state, every
caller an edge every worker holds: a span touches at most ``max_entities_per_span`` entities (the
first it names), and a message at most ``max_entities_per_message`` entities, as many learned pods
and as many caller links. The rest is dropped and counted in :attr:`TraceBatch.over_cap`, which
the worker dead-letters once per message while routing what is within the caps.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from functools import partial
from itertools import chain, islice
from typing import Any, Generic, TypeVar

from stream.entities.context import MAX_CALLERS_PER_ENTITY
from stream.entities.resolve import EntityResolver, is_service
from stream.ingest.formats.limits import DecodeLimits
from stream.ingest.formats.otlp.semconv import CANONICAL, HOST_KEYS, AttributeValue, Found
from stream.ingest.formats.otlp.touches import (
    CallerFacts,
    ResourceFacts,
    SpanTargets,
    caller_facts,
    host_needs_url,
    span_targets,
    text,
)
from stream.models import DecodeError, Touch, TraceBatch

MAX_CACHED_ENTRIES = 20_000  # a cache that holds this many starts over: bounded memory whatever the input
MAX_CACHED_VALUE_LENGTH = 256  # values longer than this (full URLs with queries, say) are rarely seen twice
_NS_PER_S = 1e9

Key = TypeVar("Key")
Value = TypeVar("Value")
DecodeValue = Callable[[Any], AttributeValue]


class BoundedCache(dict[Key, Value], Generic[Key, Value]):
    """A dict that starts over once it holds ``limit`` entries, so hostile input cannot grow it."""

    __slots__ = ("limit",)

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def keep(self, key: Key, value: Value) -> Value:
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
        return value


class FoldCaches:
    """What the fold keeps across messages, owned by one decoder; each cache holds at most ``limit`` entries."""

    def __init__(self, limit: int = MAX_CACHED_ENTRIES) -> None:
        self.targets: BoundedCache[tuple[ResourceFacts, int, Found], SpanTargets] = BoundedCache(limit)
        self.callers: BoundedCache[Found, CallerFacts] = BoundedCache(limit)
        self.host_needs_url: BoundedCache[Any, bool] = BoundedCache(limit)


class LazyTable(dict[Key, Value], Generic[Key, Value]):
    """A dict that makes a missing entry with ``make(key)`` and keeps it: a hit is one dict lookup."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[Key], Value]) -> None:
        super().__init__()
        self.make = make

    def __missing__(self, key: Key) -> Value:
        value = self[key] = self.make(key)
        return value


class EntityTally:
    """One entity's touch: what the span groups naming it add up to, and the first trace ids seen."""

    __slots__ = ("spans", "errors", "internet", "first", "last", "trace_ids", "callers")

    def __init__(self) -> None:
        self.spans = 0
        self.errors = 0
        self.internet = 0
        self.first = 1 << 64
        self.last = -1
        self.trace_ids: list[bytes] = []
        self.callers: dict[str, None] = {}


class SpanGroup:
    """The spans of one message that share their targets: the tallies they move, and running counts.

    The counts are kept per group, not per tally, so a span costs the same however many entities it
    touches; :meth:`MessageFold.batch` adds them to the tallies once. ``dropped`` is how many entities
    each of its spans names beyond the caps.
    """

    __slots__ = ("tallies", "service", "server", "callers", "spans", "errors", "internet", "first", "last",
                 "sampling", "dropped")

    def __init__(self, tallies: tuple[EntityTally, ...], service: str | None, server: bool, dropped: int):
        self.tallies = tallies
        self.dropped = dropped
        self.service = service
        self.server = server
        self.callers: dict[str, None] = {}
        self.spans = self.errors = self.internet = 0
        self.first = 1 << 64
        self.last = -1
        self.sampling = bool(tallies)  # some tally still wants trace ids


SpanGroups = LazyTable[Found, SpanGroup]
# the span groups of the span's resource and kind, found attribute values (callers aside), found caller
# attribute values, end time (ns), error, trace id, span id, parent span id
SpanRow = tuple[SpanGroups, Found, Found, int, bool, bytes, bytes, bytes]
# a group's spans summed by the compiled walk: resource number, kind, found attribute values, spans, errors,
# first and last end time (ns), and its first distinct trace ids with the number of the span that brought each
GroupSums = tuple[int, int, Found, int, int, int, int, list[tuple[int, bytes]]]


class MessageFold:
    """One message's spans folded into touches; ``decode_value`` turns a found attribute value into text.

    What a message may name is capped, so its memory and work downstream are bounded whatever it
    holds: entities per span, and per message the entities touched, the pods learned and the caller
    links (caller service -> entity), each at ``max_entities_per_message``. What is over a cap is
    dropped and counted; the batch says so (``over_cap``) for one dead letter per message.
    """

    def __init__(self, resolver: EntityResolver, limits: DecodeLimits, caches: FoldCaches, decode_value: DecodeValue):
        self.resolver = resolver
        self.caches = caches
        self.decode_value = decode_value
        self.max_trace_ids = limits.max_trace_ids
        self.max_entities_per_span = limits.max_entities_per_span
        self.max_entities_per_message = limits.max_entities_per_message
        self.dropped_pods = 0
        self.tallies: dict[str, EntityTally] = {}
        self.groups: list[SpanGroup] = []
        self.pods: dict[str, str] = {}
        self.service_of_span: dict[bytes, str | None] = {}
        self.inbound: list[tuple[bytes, SpanGroup, CallerFacts | None]] = []  # (parent span id, group, caller)
        # (service of the parent span, group, caller), where the compiled walk found the parent's resource
        self.inbound_services: list[tuple[str | None, SpanGroup, CallerFacts | None]] = []

    def resource_groups(self, resource: ResourceFacts) -> LazyTable[int, SpanGroups]:
        """Span groups of one resource of this message by kind; learns the resource's pod on the way."""
        self.learn_pod(resource)
        return LazyTable(lambda kind: LazyTable(partial(self.new_group, resource, kind)))

    def learn_pod(self, resource: ResourceFacts) -> None:
        """The resource's pod runs its service, within the message's cap on pods."""
        if resource.pod and resource.service:
            if len(self.pods) < self.max_entities_per_message or resource.pod in self.pods:
                self.pods[resource.pod] = resource.service
            else:
                self.dropped_pods += 1

    def url_unneeded(self, hits: Collection[str], value_of: Callable[[str], Any]) -> bool:
        """True when the span's URL cannot change what it touches, so its (per-request) value is left out.

        A URL adds to a plain host only for AWS endpoints (path-style S3, SQS queue URLs); a span that
        names a host outright (``server.address``, ``net.peer.name``) outside ``amazonaws.com`` is
        planned the same whatever its URL path, and keeping the path would make each request new targets.
        """
        hosts = [value_of(key) for key in HOST_KEYS if key in hits]
        if not hosts:
            return False
        known = self.caches.host_needs_url
        for raw in hosts:
            needed = known.get(raw)
            if needed is None:
                needed = host_needs_url(text(self.decode_value(raw)))
                if _cacheable((raw,)):
                    known.keep(raw, needed)
            if needed:
                return False
        return True

    def fold(self, spans: Iterable[SpanRow]) -> None:
        """The hot loop: each span moves the counters of its group, nothing more.

        ``span_id`` is given only when callers may be looked up (several resources in the message);
        ``callers`` and ``parent_id`` only for inbound spans, whose callers are worked out in :meth:`batch`.
        """
        service_of_span = self.service_of_span
        inbound = self.inbound
        sample_size = self.max_trace_ids
        callers_seen = self.caches.callers
        for groups, found, callers, end_ns, error, trace_id, span_id, parent_id in spans:
            group = groups[found]
            group.spans += 1
            if error:
                group.errors += 1
            if end_ns < group.first:
                group.first = end_ns
            if end_ns > group.last:
                group.last = end_ns
            if span_id:
                service_of_span[span_id] = group.service
            if callers:
                caller = callers_seen.get(callers) or self._caller(callers)
                if caller.public and group.server:
                    group.internet += 1
                inbound.append((parent_id, group, caller))
            elif parent_id:
                inbound.append((parent_id, group, None))
            if group.sampling:
                group.sampling = False
                for tally in group.tallies:
                    sample = tally.trace_ids
                    if len(sample) < sample_size:
                        if trace_id not in sample:
                            sample.append(trace_id)
                        group.sampling = group.sampling or len(sample) < sample_size

    def add_sums(self, groups: list[SpanGroup], sums: list[GroupSums]) -> None:
        """What :meth:`fold` does, from the compiled walk's sums per group.

        Each tally keeps the first ``max_trace_ids`` distinct trace ids of the spans of all its groups in
        message order: a trace id among those is among its own group's first distinct ones, so merging the
        groups' samples by span number gives the same ids in the same order.
        """
        samples: dict[EntityTally, list[tuple[int, bytes]]] = {}
        for group, (_, _, _, spans, errors, first, last, sample) in zip(groups, sums, strict=True):
            group.spans += spans
            group.errors += errors
            group.first = min(group.first, first)
            group.last = max(group.last, last)
            for tally in group.tallies:
                samples.setdefault(tally, []).extend(sample)
        for tally, sample in samples.items():
            kept = tally.trace_ids
            for _, trace_id in sorted(sample):
                if len(kept) == self.max_trace_ids:
                    break
                if trace_id not in kept:
                    kept.append(trace_id)

    def add_inbound(self, groups: list[SpanGroup], rows: list[tuple[int, Found, int, int]],
                    services: list[str | None]) -> None:
        """The compiled walk's inbound spans, counted per group (its number in ``groups``), caller attributes and
        resource of the parent span (its number in ``services``, -1 when not in the message)."""
        callers_seen = self.caches.callers
        for number, callers, parent_resource, spans in rows:
            group = groups[number]
            caller = None
            if callers:
                caller = callers_seen.get(callers) or self._caller(callers)
                if caller.public and group.server:
                    group.internet += spans
            self.inbound_services.append((None if parent_resource < 0 else services[parent_resource], group, caller))

    def batch(self) -> TraceBatch:
        """The touches the folded spans add up to, within the message's caps."""
        self._add_callers()
        dropped = self.dropped_pods
        for group in self.groups:
            dropped += group.dropped * group.spans
            for tally in group.tallies:
                tally.spans += group.spans
                tally.errors += group.errors
                tally.internet += group.internet
                tally.first = min(tally.first, group.first)
                tally.last = max(tally.last, group.last)
                tally.callers.update(group.callers)
        touches, links = [], self.max_entities_per_message
        for entity, tally in self.tallies.items():
            callers = list(islice(tally.callers, min(links, MAX_CALLERS_PER_ENTITY)))
            links -= len(callers)
            dropped += len(tally.callers) - len(callers)
            touches.append(Touch(
                entity=entity, services=callers, spans=tally.spans, errors=tally.errors,
                internet_spans=tally.internet, first_seen=tally.first / _NS_PER_S, last_seen=tally.last / _NS_PER_S,
                trace_ids=[trace_id.hex() for trace_id in tally.trace_ids],
            ))
        last = max((group.last for group in self.groups), default=None)
        return TraceBatch(touches=touches, pods=self.pods,
                          over_cap=self._over_cap_reason(dropped) if dropped else None,
                          last_seen=None if last is None else last / _NS_PER_S)

    def new_group(self, resource: ResourceFacts, kind: int, found: Found) -> SpanGroup:
        """The message's group for spans of this resource, kind and values, with the asset aliases as they are now."""
        targets = self._targets(resource, kind, found)
        entities = targets.fixed
        if targets.host is not None:
            claimed = self.resolver.resolve(targets.host) or targets.unclaimed
            entities = (*entities, claimed) if claimed else entities
        tallies = tuple(tally for tally in map(self._tally, entities) if tally is not None)
        group = SpanGroup(tallies, resource.service, targets.server, targets.dropped + len(entities) - len(tallies))
        if not targets.inbound and resource.service:
            group.callers[resource.service] = None
        self.groups.append(group)
        return group

    def _targets(self, resource: ResourceFacts, kind: int, found: Found) -> SpanTargets:
        key = (resource, kind, found)
        targets = self.caches.targets.get(key)
        if targets is None:
            targets = span_targets(resource, kind, self._values(found), self.max_entities_per_span)
            if _cacheable(raw for _, raw in found):
                self.caches.targets.keep(key, targets)
        return targets

    def _caller(self, found: Found) -> CallerFacts:
        """An inbound span's caller attributes, read once per distinct combination."""
        caller = caller_facts(self._values(found))
        if _cacheable(raw for _, raw in found):
            self.caches.callers.keep(found, caller)
        return caller

    def _values(self, found: Found) -> dict[str, AttributeValue]:
        """The found values by canonical name; where a span sends both names of one, the canonical one wins
        (whatever order the walk found them in)."""
        return {CANONICAL[name]: self.decode_value(value)
                for name, value in sorted(found, key=lambda pair: (pair[0] == CANONICAL[pair[0]], pair[0]))}

    def _over_cap_reason(self, dropped: int) -> str:
        return (f"message names more entities than hotpath keeps ({self.max_entities_per_span} per span, "
                f"HOTPATH_MAX_ENTITIES_PER_SPAN; {self.max_entities_per_message} entities, pods and caller links "
                f"per message, HOTPATH_MAX_ENTITIES_PER_MESSAGE): {dropped} dropped, the rest routed")

    def _add_callers(self) -> None:
        """Inbound spans: the caller is the parent's service when the parent is in this message and
        belongs to another service, else the service an asset alias gives the caller's address."""
        by_alias: dict[tuple[tuple[str, ...], str | None], str | None] = {}
        service_of_span = self.service_of_span
        parents = ((service_of_span.get(parent_id) if parent_id else None, group, caller)
                   for parent_id, group, caller in self.inbound)
        for service, group, caller in chain(self.inbound_services, parents):
            if service is not None and service != group.service:
                group.callers[service] = None
            elif caller is not None and caller.addresses:
                key = (caller.addresses, group.service)
                if key not in by_alias:
                    by_alias[key] = self._caller_by_alias(caller.addresses, group.service)
                if by_alias[key] is not None:
                    group.callers[by_alias[key]] = None

    def _caller_by_alias(self, addresses: tuple[str, ...], own_service: str | None) -> str | None:
        for address in addresses:
            entity = self.resolver.resolve(address)
            if entity is not None and is_service(entity) and entity != own_service:
                return entity
        return None

    def _tally(self, entity: str) -> EntityTally | None:
        """The entity's tally; None once the message has named ``max_entities_per_message`` others."""
        tally = self.tallies.get(entity)
        if tally is None and len(self.tallies) < self.max_entities_per_message:
            tally = self.tallies[entity] = EntityTally()
        return tally


def _cacheable(raw_values: Iterable[Any]) -> bool:
    return all(len(raw) <= MAX_CACHED_VALUE_LENGTH for raw in raw_values)


def check_span_count(span_count: int, limits: DecodeLimits) -> None:
    """Refuse a message holding more spans than ``max_spans_per_message``, before any is folded."""
    if span_count > limits.max_spans_per_message:
        raise DecodeError(
            f"message holds {span_count} spans, over the {limits.max_spans_per_message}-span limit "
            "(HOTPATH_MAX_SPANS_PER_MESSAGE)"
        )


def too_many_attributes(count: int, maximum: int) -> str:
    """The reason a span with ``count`` attributes is refused."""
    return f"a span has {count} attributes, over the {maximum}-attribute limit (HOTPATH_MAX_ATTRIBUTES_PER_SPAN)"
