"""The ``otlp_json`` walk: span rows straight from orjson's dicts.

protobuf's ``json_format`` would be slow and would read the hex trace and span ids as base64;
attribute values are picked out already decoded, so the fold takes them as they are.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from stream import jsonsafe
from stream.ingest.formats.limits import DecodeLimits
from stream.ingest.formats.otlp.fold import MessageFold, SpanRow, check_span_count, too_many_attributes
from stream.ingest.formats.otlp.semconv import (
    CALLER_KEYS,
    INBOUND,
    INTERNAL_WANTED,
    KIND_NAMES,
    RESOURCE_KEYS,
    STATUS_CODE_ERROR,
    URL_KEYS,
    WANTED_BY_KIND,
    AttributeValue,
)
from stream.ingest.formats.otlp.touches import resource_facts
from stream.models import DecodeError


def json_value(value: AttributeValue) -> AttributeValue:
    """An attribute value the JSON walk found: already text."""
    return value


def json_spans(value: bytes, fold: MessageFold, limits: DecodeLimits) -> Iterator[SpanRow]:
    """Span rows of an ``otlp_json`` message, walked straight from orjson's dicts."""
    document = jsonsafe.expect_dict(
        jsonsafe.loads(value, limits.max_record_bytes, limits.max_json_depth), "an OTLP/JSON trace message"
    )
    resources = _json_list(document, "resourceSpans", "the message")
    scopes_of = [
        (resource, [_json_list(scope, "spans", "scopeSpans[]")
                    for scope in _json_list(resource, "scopeSpans", "resourceSpans[]")])
        for resource in resources
    ]
    check_span_count(sum(len(spans) for _, span_lists in scopes_of for spans in span_lists), limits)
    track_span_ids = len(resources) > 1
    max_attributes = limits.max_attributes_per_span
    for resource, span_lists in scopes_of:
        resource_object = jsonsafe.expect_dict(resource.get("resource", {}), "resourceSpans[].resource")
        attributes = _attributes(resource_object.get("attributes"), RESOURCE_KEYS, max_attributes)
        groups_by_kind = fold.resource_groups(resource_facts(attributes))
        for spans in span_lists:
            for span in spans:
                if not isinstance(span, dict):
                    raise DecodeError(f"a span must be a JSON object, got {type(span).__name__}")
                kind = _kind(span.get("kind", 0))
                picked = _attributes(span.get("attributes"), WANTED_BY_KIND.get(kind, INTERNAL_WANTED), max_attributes)
                callers = tuple((key, picked.pop(key)) for key in CALLER_KEYS if key in picked)
                if ("url.full" in picked or "http.url" in picked) and fold.url_unneeded(picked, picked.__getitem__):
                    for key in URL_KEYS:
                        picked.pop(key, None)
                status = span.get("status") or {}
                error = isinstance(status, dict) and status.get("code") in (STATUS_CODE_ERROR, "STATUS_CODE_ERROR")
                yield (
                    groups_by_kind[kind], tuple(picked.items()), callers, _end_time(span.get("endTimeUnixNano")), error,
                    _hex_id(span.get("traceId"), 16, "traceId"),
                    _hex_id(span.get("spanId"), 8, "spanId") if track_span_ids else b"",
                    _hex_id(span.get("parentSpanId"), 8, "parentSpanId", required=False) if kind in INBOUND else b"",
                )


def _json_list(obj: Any, key: str, where: str) -> list[Any]:
    if not isinstance(obj, dict):
        raise DecodeError(f"{where} must be a JSON object, got {type(obj).__name__}")
    return jsonsafe.expect_list(obj.get(key, []), f"{where}.{key}")


def _kind(kind: Any) -> int:
    if isinstance(kind, int) and not isinstance(kind, bool):
        return kind
    if isinstance(kind, str) and kind in KIND_NAMES:
        return KIND_NAMES[kind]
    raise DecodeError(f"span kind must be a SpanKind number or name, got {kind!r:.60}")


def _end_time(value: Any) -> int:
    """OTLP/JSON writes 64-bit integers as strings; plain numbers are accepted too."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isdigit() and len(value) <= 20:
        return int(value)
    raise DecodeError(f"span endTimeUnixNano must be a non-negative integer, got {value!r:.60}")


def _hex_id(value: Any, size: int, name: str, *, required: bool = True) -> bytes:
    """OTLP/JSON ids are hex (not base64 as protobuf's JSON mapping would have it)."""
    if not value and not required:
        return b""
    if isinstance(value, str) and len(value) == 2 * size:
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass
    raise DecodeError(f"span {name} must be {2 * size} hex digits, got {value!r:.60}")


def _attributes(attributes: Any, wanted: frozenset[str], max_attributes: int) -> dict[str, AttributeValue]:
    if attributes is None:
        return {}
    if not isinstance(attributes, list):
        raise DecodeError(f"attributes must be a JSON array, got {type(attributes).__name__}")
    if len(attributes) > max_attributes:
        raise DecodeError(too_many_attributes(len(attributes), max_attributes))
    picked: dict[str, AttributeValue] = {}
    for attribute in attributes:
        if not isinstance(attribute, dict):
            raise DecodeError(f"an attribute must be a JSON object with key and value, got {type(attribute).__name__}")
        key = attribute.get("key")
        if not isinstance(key, str):
            raise DecodeError(f"an attribute key must be a string, got {type(key).__name__}")
        if key in wanted:
            picked[key] = _value(attribute.get("value"))
    return picked


def _value(value: Any) -> AttributeValue:
    if not isinstance(value, dict):
        return ()
    text = value.get("stringValue")
    if isinstance(text, str) and text:
        return text
    array = value.get("arrayValue")
    items = array.get("values") if isinstance(array, dict) else None
    if not isinstance(items, list):
        return ()
    return tuple(
        item["stringValue"] for item in items
        if isinstance(item, dict) and isinstance(item.get("stringValue"), str) and item["stringValue"]
    )
