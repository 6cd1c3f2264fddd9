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
from opentelemetry.trace import SpanKind

from stream.demo.tracegen import TraceBuilder, Workload, aws_call, database, encode_batch, http_client
from stream.entities.resolve import EntityResolver
from stream.ingest.formats.limits import DecodeLimits
from stream.ingest.formats.otlp import decode_traces
from stream.models import Asset, DecodeError

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LIMITS = DecodeLimits(max_record_bytes=256 * 1024, max_spans_per_message=1000, max_attributes_per_span=64, max_trace_ids=3)
T0 = 1_772_446_800.0


def _message_spans() -> list[list]:
    """A few small, varied batches of real SDK spans."""
    builder = TraceBuilder(seed=5, workloads=[
        Workload("frontend", pod="frontend-6d8f7c9b5-q2w3e"),
        Workload("orders", pod="orders-7d9f8c6b5-x2k4q", extra={"cloud.platform": "aws_ec2", "host.id": "i-0abc"}),
    ])
    batches = []
    for n in range(3):
        page = builder.server_span("frontend", "GET /", start=T0 + n, client_address="81.2.69.142",
                                   forwarded_for="81.2.69.142, 10.0.0.1")
        out = builder.client_span("frontend", "GET", start=T0 + n, parent=page,
                                  attributes=http_client("http://orders.internal/orders", legacy=n == 1))
        served = builder.server_span("orders", "GET /orders", start=T0 + n, parent=out, client_address="10.0.0.2",
                                     error=n == 2)
        builder.client_span("orders", "q", start=T0 + n, parent=served,
                            attributes=database("postgresql", "orders-db.internal", "orders", legacy=n == 0))
        builder.client_span("orders", "s3", start=T0 + n, parent=served, kind=SpanKind.PRODUCER, attributes=aws_call(
            "DynamoDB", "Query", {"aws.dynamodb.table_names": ("orders", "items"), "aws.s3.bucket": "b"}))
        batches.append(builder.take())
    return batches


BATCHES = _message_spans()
PROTO_MESSAGES = [encode_batch(spans, "otlp_proto") for spans in BATCHES]
JSON_DOCUMENTS = [orjson.loads(encode_batch(spans, "otlp_json")) for spans in BATCHES]


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
        assert 0 < touch.spans <= batch.span_count
        assert 0 <= touch.errors <= touch.spans and 0 <= touch.internet_spans <= touch.spans
        assert touch.first_seen <= touch.last_seen
        assert len(set(touch.trace_ids)) == len(touch.trace_ids) <= LIMITS.max_trace_ids
        orjson.dumps(touch.to_record())


@st.composite
def damaged_proto(draw: st.DrawFn) -> bytes:
    """A real otlp_proto message cut short, with bytes overwritten, or with a stretch repeated."""
    raw = bytearray(draw(pick(PROTO_MESSAGES)))
    action = draw(st.sampled_from(("cut", "overwrite", "repeat")))
    if action == "cut":
        return bytes(raw[: draw(st.integers(0, len(raw) - 1))])
    if action == "overwrite":
        for _ in range(draw(st.integers(1, 8))):
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        return bytes(raw)
    start = draw(st.integers(0, len(raw) - 1))
    stretch = raw[start : start + draw(st.integers(1, 64))]
    return bytes(raw[:start] + stretch * draw(st.integers(2, 50)) + raw[start:])


@FUZZ
@given(st.one_of(damaged_proto(), st.binary(max_size=2048)))
def test_damaged_or_random_protobuf_only_raises_decode_error(value):
    only_decode_errors(value, "otlp_proto")


@FUZZ
@given(st.one_of(mutated(JSON_DOCUMENTS), deep_nesting(), st.binary(max_size=512)))
def test_mutated_json_only_raises_decode_error(value):
    only_decode_errors(value, "otlp_json")


def _spans(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [span for resource in document["resourceSpans"] for scope in resource["scopeSpans"] for span in scope["spans"]]


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

    with pytest.raises(DecodeError, match=f"{count} attributes, over the {LIMITS.max_attributes_per_span}-attribute limit"):
        decode_traces(orjson.dumps(document), resolver(), encoding="otlp_json", limits=LIMITS)


def _varint(number: int) -> bytes:
    out = bytearray()
    while number >= 0x80:
        out.append(number & 0x7F | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    return bytes([tag]) + _varint(len(payload)) + payload


def test_a_million_tiny_attributes_are_refused_with_a_reason():
    """Two bytes each on the wire (an empty KeyValue), written directly so the test itself stays small."""
    span = _field(0x0A, b"\x01" * 16) + _field(0x12, b"\x02" * 8) + b"\x4a\x00" * 1_000_000
    value = _field(0x0A, _field(0x12, _field(0x12, span)))  # request > resource spans > scope spans > span

    with pytest.raises(DecodeError, match="1000000 attributes, over the 512-attribute limit"):
        decode_traces(value, EntityResolver())


def test_too_many_spans_are_refused_before_any_is_folded():
    span = _field(0x0A, b"\x01" * 16) + _field(0x12, b"\x02" * 8)
    value = _field(0x0A, _field(0x12, _field(0x12, span) * 1001))

    with pytest.raises(DecodeError, match="1001 spans, over the 1000-span limit"):
        decode_traces(value, EntityResolver(), limits=LIMITS)
