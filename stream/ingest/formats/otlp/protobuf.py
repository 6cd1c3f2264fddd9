"""The ``otlp_proto`` walk: an ``ExportTraceServiceRequest`` parsed once, with a lean schema, into span rows.

The lean schema is wire-compatible with OTLP (span attributes read as a map, whose wire layout is
exactly the repeated ``KeyValue``), so unneeded fields are skipped in C and the wanted keys are
picked out by a set intersection rather than a Python walk; values stay serialized until a span's
targets are first worked out. Duplicate attribute keys keep the last value (OTLP requires unique
keys); a flood of one repeated key is caught by a count of the raw entries, made only when the
message holds more of them than its spans may carry.
"""

from __future__ import annotations

import operator
import os
import sys
from collections.abc import Iterator
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError as ProtobufDecodeError
from google.protobuf.message import Message

from stream.ingest.formats.limits import DecodeLimits
from stream.ingest.formats.otlp.fold import (
    MAX_CACHED_VALUE_LENGTH,
    BoundedCache,
    MessageFold,
    SpanRow,
    check_span_count,
    too_many_attributes,
)
from stream.ingest.formats.otlp.semconv import (
    CALLER_KEY_SET,
    CALLER_KEYS,
    CANONICAL,
    HOST_KEYS,
    INBOUND,
    INBOUND_WANTED,
    INTERNAL_WANTED,
    OUTBOUND,
    OUTBOUND_WANTED,
    RESOURCE_KEYS,
    STATUS_CODE_ERROR,
    URL_KEYS,
    WANTED_BY_KIND,
    AttributeValue,
    Found,
)
from stream.ingest.formats.otlp.touches import ResourceFacts, resource_facts
from stream.models import DecodeError

MAX_CACHED_STATUSES = 256  # a span status is a code and a message; only a handful of encodings recur
_SPAN_ATTRIBUTE_TAG = b"\x4a"  # field 9, length-delimited: how every span attribute starts on the wire
_SPAN_FIELDS = operator.attrgetter("kind", "end_time_unix_nano", "status", "trace_id")


def _compiled_walk():
    """The compiled walk (``wire.c``) told which keys and kinds matter, or None where it was not built."""
    try:
        from stream.ingest.formats.otlp import wire
    except ImportError:
        return None
    # its flags: read on inbound, outbound, other spans; a caller, a URL, a host; a forwarded-for, client or peer
    # address; a canonical name (as wire.c numbers them)
    flags = {1: INBOUND_WANTED, 2: OUTBOUND_WANTED, 4: INTERNAL_WANTED, 8: CALLER_KEY_SET, 16: URL_KEYS, 32: HOST_KEYS,
             **{flag: {key for key, name in CALLER_KEYS.items() if name == role}
                for flag, role in ((64, "x-forwarded-for"), (128, "client.address"), (256, "network.peer.address"))},
             512: {key for key, name in CANONICAL.items() if key == name}}
    span_keys = [(key, sum(flag for flag, keys in flags.items() if key in keys))
                 for key in sorted(INBOUND_WANTED | OUTBOUND_WANTED | INTERNAL_WANTED)]
    wire.configure(span_keys, [(key, 1) for key in sorted(RESOURCE_KEYS)], sorted(INBOUND), sorted(OUTBOUND),
                   STATUS_CODE_ERROR, int.from_bytes(os.urandom(8), "little"))
    return wire


COMPILED_WALK = _compiled_walk()


def _lean_schema() -> descriptor_pool.DescriptorPool:
    """OTLP trace messages reduced to the fields hotpath reads, wire-compatible with OTLP.

    Everything else (names, start times, events, links, scopes) is skipped by the parser as unknown
    fields. Span and resource attributes are declared as maps from key to the still-serialized
    ``AnyValue`` (map entries encode exactly like the OTLP ``KeyValue`` list), so values are only
    decoded for the few keys hotpath wants.
    """
    field = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="hotpath/lean_otlp_trace.proto", package="hotpath.lean", syntax="proto3"
    )

    def message(name: str, fields: list[tuple[str, int, int, int, str]], parent: Any = None) -> Any:
        declared = (parent.nested_type if parent is not None else file.message_type).add(name=name)
        for field_name, number, kind, label, type_name in fields:
            added = declared.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                added.type_name = f".hotpath.lean.{type_name}"
        return declared

    def attribute_map(parent: Any) -> None:
        entry = message("AttributesEntry", [
            ("key", 1, field.TYPE_STRING, field.LABEL_OPTIONAL, ""),
            ("value", 2, field.TYPE_BYTES, field.LABEL_OPTIONAL, ""),
        ], parent)
        entry.options.map_entry = True

    one, many = field.LABEL_OPTIONAL, field.LABEL_REPEATED
    message("AnyValue", [
        ("string_value", 1, field.TYPE_STRING, one, ""),
        ("array_value", 5, field.TYPE_MESSAGE, one, "ArrayValue"),
    ])
    message("ArrayValue", [("values", 1, field.TYPE_MESSAGE, many, "AnyValue")])
    resource = message("Resource", [("attributes", 1, field.TYPE_MESSAGE, many, "Resource.AttributesEntry")])
    attribute_map(resource)
    message("Status", [("code", 3, field.TYPE_INT32, one, "")])
    span = message("Span", [
        ("trace_id", 1, field.TYPE_BYTES, one, ""),
        ("span_id", 2, field.TYPE_BYTES, one, ""),
        ("parent_span_id", 4, field.TYPE_BYTES, one, ""),
        ("kind", 6, field.TYPE_INT32, one, ""),
        ("end_time_unix_nano", 8, field.TYPE_FIXED64, one, ""),
        ("attributes", 9, field.TYPE_MESSAGE, many, "Span.AttributesEntry"),
        ("status", 15, field.TYPE_BYTES, one, ""),
    ])
    attribute_map(span)
    message("ScopeSpans", [("spans", 2, field.TYPE_MESSAGE, many, "Span")])
    message("ResourceSpans", [
        ("resource", 1, field.TYPE_MESSAGE, one, "Resource"),
        ("scope_spans", 2, field.TYPE_MESSAGE, many, "ScopeSpans"),
    ])
    message("ExportTraceServiceRequest", [("resource_spans", 1, field.TYPE_MESSAGE, many, "ResourceSpans")])
    # The same messages with every span attribute kept as one entry, duplicates included, to count them.
    message("CountedSpan", [("attributes", 9, field.TYPE_BYTES, many, "")])
    message("CountedScopeSpans", [("spans", 2, field.TYPE_MESSAGE, many, "CountedSpan")])
    message("CountedResourceSpans", [("scope_spans", 2, field.TYPE_MESSAGE, many, "CountedScopeSpans")])
    message("CountedRequest", [("resource_spans", 1, field.TYPE_MESSAGE, many, "CountedResourceSpans")])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return pool


def _lean_class(pool: descriptor_pool.DescriptorPool, name: str) -> type[Message]:
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"hotpath.lean.{name}"))


_LEAN_SCHEMA = _lean_schema()
_LeanRequest = _lean_class(_LEAN_SCHEMA, "ExportTraceServiceRequest")
_LeanStatus = _lean_class(_LEAN_SCHEMA, "Status")
_LeanAnyValue = _lean_class(_LEAN_SCHEMA, "AnyValue")
_CountedRequest = _lean_class(_LEAN_SCHEMA, "CountedRequest")


class ErrorStatuses(BoundedCache[bytes, bool]):
    """Serialized ``Status`` -> is it ERROR; each distinct encoding is parsed once (a hit is one dict lookup)."""

    __slots__ = ()

    def __missing__(self, encoded: bytes) -> bool:
        try:
            error = _LeanStatus.FromString(encoded).code == STATUS_CODE_ERROR
        except ProtobufDecodeError:
            raise DecodeError("span status is not a valid protobuf Status") from None
        return self.keep(encoded, error)


class ProtobufWalk:
    """Span rows of ``otlp_proto`` messages, with what the walk keeps across them: resources and statuses."""

    def __init__(self, limits: DecodeLimits, cache_limit: int) -> None:
        self.limits = limits
        self.resources: BoundedCache[Found, ResourceFacts] = BoundedCache(cache_limit)
        self.error_statuses = ErrorStatuses(min(cache_limit, MAX_CACHED_STATUSES))
        self.values: BoundedCache[bytes, AttributeValue] = BoundedCache(cache_limit)

    def value(self, encoded: bytes) -> AttributeValue:
        """:func:`proto_value`, kept per distinct short value: a caller's address recurs in many combinations
        (behind each proxy, with each peer) that are each new to the caches of combinations."""
        value = self.values.get(encoded)
        if value is None:
            value = proto_value(encoded)
            if len(encoded) <= MAX_CACHED_VALUE_LENGTH:
                self.values.keep(encoded, value)
        return value

    def spans(self, value: bytes, fold: MessageFold) -> Iterator[SpanRow]:
        """The message's span rows; found values stay serialized until the fold needs them."""
        try:
            request = _LeanRequest.FromString(value)
        except ProtobufDecodeError as exc:
            raise DecodeError(f"not a valid OTLP protobuf ExportTraceServiceRequest ({exc})") from None
        resource_spans = request.resource_spans
        span_count = sum(len(scope.spans) for resource in resource_spans for scope in resource.scope_spans)
        check_span_count(span_count, self.limits)
        max_attributes = self.limits.max_attributes_per_span
        _check_duplicate_attribute_flood(value, span_count, max_attributes)
        track_span_ids = len(resource_spans) > 1
        error_statuses = self.error_statuses
        wanted_by_kind = WANTED_BY_KIND
        for resource in resource_spans:
            attributes = resource.resource.attributes
            wanted = RESOURCE_KEYS.intersection(attributes)
            groups_by_kind = fold.resource_groups(
                self._resource(tuple(zip(wanted, map(attributes.__getitem__, wanted), strict=True)))
            )
            for scope in resource.scope_spans:
                for span in scope.spans:
                    attributes = span.attributes
                    if len(attributes) > max_attributes:
                        raise DecodeError(too_many_attributes(len(attributes), max_attributes))
                    kind, end_ns, status, trace_id = _SPAN_FIELDS(span)
                    if len(trace_id) != 16:
                        raise DecodeError(f"span trace id is {len(trace_id)} bytes, expected 16")
                    callers: Found = ()
                    parent_id = b""
                    if kind in INBOUND:
                        hits = INBOUND_WANTED.intersection(attributes)
                        caller_keys = hits & CALLER_KEY_SET
                        if caller_keys:
                            hits -= caller_keys
                            callers = tuple(zip(caller_keys, map(attributes.__getitem__, caller_keys), strict=True))
                        parent_id = span.parent_span_id
                    else:
                        hits = wanted_by_kind.get(kind, INTERNAL_WANTED).intersection(attributes)
                        if ("url.full" in hits or "http.url" in hits) and fold.url_unneeded(
                            hits, attributes.__getitem__
                        ):
                            hits = hits.difference(URL_KEYS)
                    yield (
                        groups_by_kind[kind], tuple(zip(hits, map(attributes.__getitem__, hits), strict=True)),
                        callers, end_ns, error_statuses[status], trace_id, span.span_id if track_span_ids else b"",
                        parent_id,
                    )

    def fold_compiled(self, value: bytes, fold: MessageFold) -> bool:
        """Fold the message with the compiled walk, which sums its spans per group so that Python works per
        group, not per span; False (the fold untouched) when the walk leaves the message to :meth:`spans`:
        anything it refuses or is unsure of, which the pure walk then decodes or refuses with its reason."""
        limits = self.limits
        walked = COMPILED_WALK.walk(value, *(min(limit, sys.maxsize) for limit in (
            limits.max_spans_per_message, limits.max_attributes_per_span, limits.max_trace_ids)))
        if walked is None:
            return False
        resources, sums, inbound = walked
        groups, services = [], []
        rows = iter(sums)
        row = next(rows, None)
        for number, found in enumerate(resources):
            resource = self._resource(found)
            services.append(resource.service)
            fold.learn_pod(resource)
            while row is not None and row[0] == number:  # the walk lists each group once, in message order
                groups.append(fold.new_group(resource, row[1], row[2]))
                row = next(rows, None)
        fold.add_sums(groups, sums)
        fold.add_inbound(groups, inbound, services)
        return True

    def _resource(self, found: Found) -> ResourceFacts:
        """A resource's facts from its still-serialized attribute values, kept across messages."""
        resource = self.resources.get(found)
        if resource is None:
            resource = self.resources.keep(found, resource_facts({key: self.value(value) for key, value in found}))
        return resource


def proto_value(encoded: bytes) -> AttributeValue:
    """The text of a serialized ``AnyValue``: a short string is sliced out, anything else parsed."""
    if len(encoded) > 2 and encoded[0] == 0x0A and encoded[1] == len(encoded) - 2:
        try:
            return encoded[2:].decode()
        except UnicodeDecodeError:
            raise DecodeError("an attribute's string value is not valid UTF-8") from None
    try:
        value = _LeanAnyValue.FromString(encoded)
    except ProtobufDecodeError:
        raise DecodeError("an attribute value is not a valid protobuf AnyValue") from None
    if value.string_value:
        return value.string_value
    return tuple(item.string_value for item in value.array_value.values if item.string_value)


def _check_duplicate_attribute_flood(value: bytes, span_count: int, max_attributes: int) -> None:
    """Refuse a flood of attribute entries that the map view would fold away.

    The map view keeps one entry per key, so a span repeating one key a million times passes the
    per-span check on distinct keys. Every span attribute takes two bytes or more and starts with one
    tag byte on the wire; only when the message is long enough, and that byte frequent enough, to
    hold more entries than ``span_count`` spans may legitimately carry is it parsed a second (cheap)
    time to count every entry, so ordinary messages never pay.
    """
    allowed = span_count * max_attributes
    if len(value) <= 2 * allowed or value.count(_SPAN_ATTRIBUTE_TAG) <= allowed:  # an entry takes 2 bytes or more
        return
    for resource in _CountedRequest.FromString(value).resource_spans:
        for scope in resource.scope_spans:
            for span in scope.spans:
                if len(span.attributes) > max_attributes:
                    raise DecodeError(too_many_attributes(len(span.attributes), max_attributes))
