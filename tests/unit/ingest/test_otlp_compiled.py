"""The compiled otlp_proto walk decodes exactly as the pure-Python one: the same touches, pods, caps and times
for every message, and the same DecodeError reason for every message either refuses.

Generated requests (opentelemetry-proto's classes) repeat keys, trace, span and parent ids, mix resources of
one service, carry arrays, numbers and AWS endpoints, and run into the caps; hostile ones add values and keys
that are not UTF-8, trace ids of the wrong length and cut bytes; the fuzz corpus adds random bytes and
damaged real SDK messages. The JSON encoding of each generated request gives the same touches too.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from otlp_messages import (
    PROTO_MESSAGES,
    TRACE_IDS,
    damaged_proto,
    inbound_request,
    json_bytes,
    otlp_requests,
    proto_bytes,
)

from stream.commands.main import otlp_decoder_description
from stream.entities.resolve import EntityResolver
from stream.ingest.formats.limits import DecodeLimits
from stream.ingest.formats.otlp import OtlpDecoder, decoder_name
from stream.ingest.formats.otlp.protobuf import COMPILED_WALK
from stream.models import Asset, DecodeError
from stream.settings import ConfigError, unknown_variables

pytestmark = pytest.mark.skipif(
    COMPILED_WALK is None,
    reason="the compiled OTLP decoder is not built here (make setup builds it where a C compiler is)",
)
PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# small caps, so that messages run into them: entities per span and per message, spans, attributes, trace ids
LIMITS = DecodeLimits(max_spans_per_message=24, max_attributes_per_span=7, max_trace_ids=2,
                      max_entities_per_span=2, max_entities_per_message=5)
# the JSON walk counts resource attributes against the cap too: compared within caps both walks accept
JSON_LIMITS = DecodeLimits(max_trace_ids=2, max_entities_per_span=2, max_entities_per_message=5)


def resolver() -> EntityResolver:
    known = EntityResolver()
    known.add_asset(Asset(id="arn:aws:rds:us-east-1:123456789012:db:orders", aliases=["orders-db.internal"]))
    known.add_asset(Asset(id="service:orders", aliases=["10.0.0.2", "api.example.com"]))
    known.add_asset(Asset(id="service:billing", aliases=["2001:db8::1"]))
    return known


def outcome(decoder: OtlpDecoder, value: bytes, encoding: str = "otlp_proto") -> object:
    """Everything a decode gives: the batch as records, or the DecodeError's reason."""
    try:
        batch = decoder.decode(value, encoding)  # type: ignore[arg-type]
    except DecodeError as exc:
        return ("refused", exc.reason)
    return ([touch.to_record() for touch in batch.touches], batch.pods, batch.over_cap, batch.last_seen)


def both(value: bytes, limits: DecodeLimits = LIMITS) -> tuple[object, object]:
    known = resolver()
    return (outcome(OtlpDecoder(known, limits, decoder="compiled"), value),
            outcome(OtlpDecoder(known, limits, decoder="python"), value))


@PROPERTY
@given(otlp_requests())
def test_generated_requests_decode_the_same_both_ways_and_in_json(request):
    compiled, pure = both(proto_bytes(request))
    assert compiled == pure
    from_proto = outcome(OtlpDecoder(resolver(), JSON_LIMITS, decoder="compiled"), proto_bytes(request))
    from_json = outcome(OtlpDecoder(resolver(), JSON_LIMITS), json_bytes(request), "otlp_json")
    assert from_json[0] == from_proto[0]


@PROPERTY
@given(otlp_requests(hostile=True), st.data())
def test_hostile_requests_are_refused_for_the_same_reason_both_ways(request, data):
    value = proto_bytes(request)
    if data.draw(st.booleans()):
        value = value[: data.draw(st.integers(0, max(0, len(value) - 1)))]
    compiled, pure = both(value)
    assert compiled == pure


@PROPERTY
@given(st.one_of(damaged_proto(), st.binary(max_size=2048)))
def test_fuzz_corpus_decodes_the_same_both_ways(value):
    compiled, pure = both(value, DecodeLimits(max_trace_ids=3))
    assert compiled == pure


@PROPERTY
@given(st.lists(otlp_requests(), min_size=2, max_size=6))
def test_a_stream_of_messages_decodes_the_same_with_what_each_decoder_keeps(requests):
    """One decoder per walk over several messages, with small caches that start over on the way."""
    known = resolver()
    compiled = OtlpDecoder(known, LIMITS, cache_limit=3, decoder="compiled")
    pure = OtlpDecoder(known, LIMITS, cache_limit=3, decoder="python")
    for request in requests:
        value = proto_bytes(request)
        assert outcome(compiled, value) == outcome(pure, value)


def test_the_trace_ids_kept_are_the_first_distinct_ones_in_message_order():
    a, b, c = TRACE_IDS[:3]
    value = inbound_request("orders", [a, a, b, a, c])
    compiled, pure = both(value, DecodeLimits(max_trace_ids=2))
    assert compiled == pure
    assert compiled[0][0]["trace_ids"] == [a.hex(), b.hex()]


def test_real_sdk_messages_are_summed_by_the_compiled_walk_not_handed_back():
    """The fallback is for what the compiled walk refuses: real messages must not need it."""
    for value in PROTO_MESSAGES:
        assert COMPILED_WALK.walk(value, 1000, 128, 5) is not None
        assert outcome(OtlpDecoder(resolver(), decoder="compiled"), value) == outcome(
            OtlpDecoder(resolver(), decoder="python"), value)


def test_the_decoder_in_use_is_named_and_can_be_forced(monkeypatch):
    monkeypatch.setenv("HOTPATH_OTLP_DECODER", "python")
    assert decoder_name() == "python" and not OtlpDecoder(resolver()).compiled
    assert otlp_decoder_description() == "pure Python (HOTPATH_OTLP_DECODER=python)"
    assert unknown_variables({"HOTPATH_OTLP_DECODER": "python"}) == []
    monkeypatch.setenv("HOTPATH_OTLP_DECODER", "auto")
    assert decoder_name() == "compiled" and OtlpDecoder(resolver()).compiled
    assert otlp_decoder_description() == "compiled C extension"
    monkeypatch.setenv("HOTPATH_OTLP_DECODER", "fastest")
    with pytest.raises(ConfigError, match="HOTPATH_OTLP_DECODER must be auto, compiled or python, got 'fastest'"):
        OtlpDecoder(resolver())
