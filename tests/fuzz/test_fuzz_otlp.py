"""Hostile OTLP input never escapes decode_traces as anything but DecodeError, and stays bounded.

Hypothesis cuts and overwrites the bytes of real SDK-encoded messages, throws random bytes at the
protobuf path and mutated documents (dropped keys, changed types, invalid hex ids, deep nesting,
inflated strings, attribute floods) at the JSON path. What decodes must be a consistent batch of
touches that serializes; what does not must be a DecodeError with a reason.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from fuzzing import deep_nesting, json_values, mutated, pick
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from otlp_messages import JSON_DOCUMENTS, damaged_proto, wire_field

from stream.entities.resolve import EntityResolver
from stream.ingest.formats.limits import DecodeLimits
from stream.ingest.formats.otlp import decode_traces
from stream.models import Asset, DecodeError

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LIMITS = DecodeLimits(max_record_bytes=256 * 1024, max_spans_per_message=1000, max_attributes_per_span=64,
                      max_trace_ids=3)


def resolver() -> EntityResolver:
    known = EntityResolver()
    known.add_asset(Asset(id="arn:aws:rds:us-east-1:123456789012:db:orders", aliases=["orders-db.internal"]))
    known.add_asset(Asset(id="service:orders", aliases=["orders.internal", "10.0.0.2"]))
    return known


def only_decode_errors(value: bytes, encoding: str) -> None:
    try:
        batch = decode_traces(value, resolver(), encoding=encoding, limits=LIMITS)  # type: ignore[arg-type]
    except DecodeError as exc:
        assert exc.reason and isinstance(exc.reason, str)
        return
    assert len({touch.entity for touch in batch.touches}) == len(batch.touches)
    for touch in batch.touches:
        assert 0 < touch.spans <= LIMITS.max_spans_per_message
        assert 0 <= touch.errors <= touch.spans and 0 <= touch.internet_spans <= touch.spans
        assert touch.first_seen <= touch.last_seen
        assert len(set(touch.trace_ids)) == len(touch.trace_ids) <= LIMITS.max_trace_ids
        orjson.dumps(touch.to_record())


@FUZZ
@given(st.one_of(damaged_proto(), st.binary(max_size=2048)))
def test_damaged_or_random_protobuf_only_raises_decode_error(value):
    only_decode_errors(value, "otlp_proto")


@FUZZ
@given(st.one_of(mutated(JSON_DOCUMENTS), deep_nesting(), st.binary(max_size=512)))
def test_mutated_json_only_raises_decode_error(value):
    only_decode_errors(value, "otlp_json")


def _spans(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [span for resource in document["resourceSpans"] for scope in resource["scopeSpans"]
            for span in scope["spans"]]


@FUZZ
@given(
    pick(JSON_DOCUMENTS), st.sampled_from(("traceId", "spanId", "parentSpanId")),
    st.one_of(st.text(max_size=40), json_values, st.binary(max_size=16).map(lambda raw: raw.hex().upper())),
)
def test_json_ids_that_are_not_hex_of_the_right_length_are_refused(document, field, replacement):
    document = copy.deepcopy(document)
    for span in _spans(document):
        span[field] = replacement
    only_decode_errors(orjson.dumps(document), "otlp_json")


@FUZZ
@given(pick(JSON_DOCUMENTS), st.integers(LIMITS.max_attributes_per_span + 1, 5000))
def test_json_attribute_flood_is_refused_with_a_reason(document, count):
    document = copy.deepcopy(document)
    _spans(document)[0]["attributes"] = [{"key": f"k{n}", "value": {"intValue": str(n)}} for n in range(count)]

    reason = f"{count} attributes, over the {LIMITS.max_attributes_per_span}-attribute limit"
    with pytest.raises(DecodeError, match=reason):
        decode_traces(orjson.dumps(document), resolver(), encoding="otlp_json", limits=LIMITS)


def test_a_million_tiny_attributes_are_refused_with_a_reason():
    """Two bytes each on the wire (an empty KeyValue), written directly so the test itself stays small."""
    span = wire_field(0x0A, b"\x01" * 16) + wire_field(0x12, b"\x02" * 8) + b"\x4a\x00" * 1_000_000
    value = wire_field(0x0A, wire_field(0x12, wire_field(0x12, span)))  # request > resource spans > scope spans > span

    with pytest.raises(DecodeError, match="1000000 attributes, over the 512-attribute limit"):
        decode_traces(value, EntityResolver())


def test_too_many_spans_are_refused_before_any_is_folded():
    span = wire_field(0x0A, b"\x01" * 16) + wire_field(0x12, b"\x02" * 8)
    value = wire_field(0x0A, wire_field(0x12, wire_field(0x12, span) * 1001))

    with pytest.raises(DecodeError, match="1001 spans, over the 1000-span limit"):
        decode_traces(value, EntityResolver(), limits=LIMITS)
