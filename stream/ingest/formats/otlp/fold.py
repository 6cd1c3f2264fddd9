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
from itertools import islice
from typing import Any, Generic, TypeVar

from stream.entities.context import MAX_CALLERS_PER_ENTITY
from stream.entities.resolve import EntityResolver, is_public_address, is_service
from stream.ingest.formats.limits import DecodeLimits
from stream.ingest.formats.otlp.semconv import CANONICAL, HOST_KEYS, AttributeValue, Found
from stream.ingest.formats.otlp.touches import (
    CallerFacts,
    ResourceFacts,
    SpanTargets,
    caller_facts,
    host_needs_url,
    public_caller,
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
        # per caller address: far fewer than combinations of caller attributes (proxies times visitors)
        self.public_addresses: BoundedCache[str, bool] = BoundedCache(limit)
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
        merged: set[EntityTally] = set()  # tallies of several groups, whose samples are merged and sorted
        for group, (_, _, _, spans, errors, first, last, sample) in zip(groups, sums, strict=True):
            group.spans, group.errors, group.first, group.last = spans, errors, first, last  # a new group per row
            for tally in group.tallies:
                if tally in samples:
                    samples[tally] = samples[tally] + sample
                    merged.add(tally)
                else:
                    samples[tally] = sample
        for tally, sample in samples.items():
            if tally not in merged:  # one group's sample: already its first distinct trace ids, in order
                tally.trace_ids = [trace_id for _, trace_id in sample]
                continue
            kept = tally.trace_ids
            for _, trace_id in sorted(sample):
                if len(kept) == self.max_trace_ids:
                    break
                if trace_id not in kept:
                    kept.append(trace_id)

    def add_inbound(self, groups: list[SpanGroup], rows: list[tuple[int, str, tuple[str, ...], int, int]],
                    services: list[str | None]) -> None:
        """The compiled walk's inbound spans, counted per group (its number in ``groups``), caller addresses (as
        :func:`~.touches.caller_facts` reads them: the caller's, and those an alias may name) and resource of the
        parent span (its number in ``services``, -1 when not in the message).

        An address is read only where it changes the touch: a SERVER group's internet spans (is the caller's address
        public), or a caller no parent span of another service names (which alias an address is).
        """
        public_addresses = self.caches.public_addresses
        for number, address, addresses, parent_resource, spans in rows:
            group = groups[number]
            service = services[parent_resource] if parent_resource >= 0 else None
            if group.server and address:
                public = public_addresses.get(address)
                if public is None:
                    public = public_caller(address, self._is_public)
                if public:
                    group.internet += spans
            if service is not None and service != group.service:
                group.callers[service] = None
            elif addresses:
                self._add_caller_by_alias(group, addresses)

    def batch(self) -> TraceBatch:
        """The touches the folded spans add up to, within the message's caps."""
        self._add_callers()
        dropped = self.dropped_pods
        for group in self.groups:
            spans, errors, internet, first, last, callers = (group.spans, group.errors, group.internet, group.first,
                                                             group.last, group.callers)
            dropped += group.dropped * spans
            for tally in group.tallies:
                tally.spans += spans
                tally.errors += errors
                tally.internet += internet
                if first < tally.first:
                    tally.first = first
                if last > tally.last:
                    tally.last = last
                if callers:
                    tally.callers.update(callers)
        touches, links = [], self.max_entities_per_message
        for entity, tally in self.tallies.items():
            room = min(links, MAX_CALLERS_PER_ENTITY)
            callers = list(tally.callers) if len(tally.callers) <= room else list(islice(tally.callers, room))
            links -= len(callers)
            dropped += len(tally.callers) - len(callers)
            touches.append(Touch(  # entity, services, spans, errors, internet spans, first and last seen, trace ids
                entity, callers, tally.spans, tally.errors, tally.internet, tally.first / _NS_PER_S,
                tally.last / _NS_PER_S, list(map(bytes.hex, tally.trace_ids)),
            ))  # positional: a touch per entity, and keywords cost a third more
        last = max((group.last for group in self.groups), default=None)
        return TraceBatch(touches=touches, pods=self.pods,
                          over_cap=self._over_cap_reason(dropped) if dropped else None,
                          last_seen=None if last is None else last / _NS_PER_S)

    def new_group(self, resource: ResourceFacts, kind: int, found: Found) -> SpanGroup:
        """The message's group for spans of this resource, kind and values, with the asset aliases as they are now."""
        targets = self.caches.targets.get((resource, kind, found)) or self._targets(resource, kind, found)
        entities = targets.fixed
        if targets.host is not None:
            claimed = self.resolver.resolve(targets.host) or targets.unclaimed
            entities = (*entities, claimed) if claimed else entities
        tallies = tuple(filter(None, map(self._tally, entities)))  # an EntityTally is always true
        group = SpanGroup(tallies, resource.service, targets.server, targets.dropped + len(entities) - len(tallies))
        if not targets.inbound and resource.service:
            group.callers[resource.service] = None
        self.groups.append(group)
        return group

    def _targets(self, resource: ResourceFacts, kind: int, found: Found) -> SpanTargets:
        """What spans of a combination not in the cache touch, worked out and kept."""
        targets = span_targets(resource, kind, self._values(found), self.max_entities_per_span)
        if _cacheable(raw for _, raw in found):
            self.caches.targets.keep((resource, kind, found), targets)
        return targets

    def _caller(self, found: Found) -> CallerFacts:
        """An inbound span's caller attributes, read once per distinct combination."""
        caller = caller_facts(self._values(found), self._is_public)
        if _cacheable(raw for _, raw in found):
            self.caches.callers.keep(found, caller)
        return caller

    def _is_public(self, address: str) -> bool:
        """Whether a caller address is public, worked out once per distinct address (``ipaddress`` is slow)."""
        public = self.caches.public_addresses.get(address)
        if public is None:
            public = self.caches.public_addresses.keep(address, is_public_address(address))
        return public

    def _values(self, found: Found) -> dict[str, AttributeValue]:
        """The found values by canonical name; where a span sends both names of one, the canonical one wins
        (whatever order the walk found them in)."""
        if len(found) > 1:
            found = sorted(found, key=_precedence)
        return {CANONICAL[name]: self.decode_value(value) for name, value in found}

    def _over_cap_reason(self, dropped: int) -> str:
        return (f"message names more entities than hotpath keeps ({self.max_entities_per_span} per span, "
                f"HOTPATH_MAX_ENTITIES_PER_SPAN; {self.max_entities_per_message} entities, pods and caller links "
                f"per message, HOTPATH_MAX_ENTITIES_PER_MESSAGE): {dropped} dropped, the rest routed")

    def _add_callers(self) -> None:
        """Inbound spans of the pure walk: the caller is the parent's service when the parent is in this message and
        belongs to another service, else the service an asset alias gives the caller's address."""
        service_of_span = self.service_of_span
        for parent_id, group, caller in self.inbound:
            service = service_of_span.get(parent_id) if parent_id else None
            if service is not None and service != group.service:
                group.callers[service] = None
            elif caller is not None:
                self._add_caller_by_alias(group, caller.addresses)

    def _add_caller_by_alias(self, group: SpanGroup, addresses: tuple[str, ...]) -> None:
        """The service an asset alias gives one of the caller's addresses (the first that names one) calls the group."""
        for address in addresses:
            entity = self.resolver.resolve(address)
            if entity is not None and is_service(entity) and entity != group.service:
                group.callers[entity] = None
                return

    def _tally(self, entity: str) -> EntityTally | None:
        """The entity's tally; None once the message has named ``max_entities_per_message`` others."""
        tally = self.tallies.get(entity)
        if tally is None and len(self.tallies) < self.max_entities_per_message:
            tally = self.tallies[entity] = EntityTally()
        return tally


_PRECEDENCE = {name: (name == canonical, name) for name, canonical in CANONICAL.items()}


def _precedence(pair: tuple[str, Any]) -> tuple[bool, str]:
    """Sorts found values so that a canonical name comes after (and so wins over) its other name."""
    return _PRECEDENCE[pair[0]]


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
