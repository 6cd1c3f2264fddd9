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
from opentelemetry.trace import SpanKind
from otlp_messages import (
    PROTO_MESSAGES,
    SPAN_IDS,
    T0,
    T0_NS,
    TRACE_IDS,
    damaged_proto,
    inbound_request,
    json_bytes,
    otlp_requests,
    proto_bytes,
    wire_field,
)

from stream.commands.main import otlp_decoder_description
from stream.demo.tracegen import TraceBuilder, Workload, encode_batch
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


def test_consumers_named_by_their_producer_leave_no_caller_facts_behind():
    """A CONSUMER span's peer address adds nothing when its producer in the message names the caller, so the
    decoder keeps nothing about those per-request addresses (each would take a cache entry)."""
    builder = TraceBuilder(seed=3, workloads=[Workload("orders"), Workload("billing")])
    for number in range(20):
        sent = builder.client_span("orders", "send", start=T0 + number, kind=SpanKind.PRODUCER,
                                   attributes={"messaging.system": "kafka"})
        builder.span("billing", "receive", kind=SpanKind.CONSUMER, start=T0 + number, parent=sent,
                     attributes={"network.peer.address": f"10.1.0.{number}"})
    value = encode_batch(builder.take(), "otlp_proto")
    decoder = OtlpDecoder(resolver(), decoder="compiled")
    touches = {touch.entity: touch for touch in decoder.decode(value).touches}
    assert touches["service:billing"].services == ["service:orders"]
    assert touches["service:billing"].spans == 20
    assert not decoder.fold_caches.callers
    assert outcome(decoder, value) == outcome(OtlpDecoder(resolver(), decoder="python"), value)


FORWARDED_HOPS = [
    ("81.2.69.142", 1), ("81.2.69.142:8443", 1), (" \x1f81.2.69.142\t, 10.0.0.1", 1), ("10.0.0.1, 81.2.69.142", 0),
    ("[2001:4860::8888]:443", 1), ("[2001:4860::8888", 1), ("2001:4860::8888", 1), ("81.2.69.142:", 0),
    ("a.b.c:1", 0), (", 81.2.69.142", 0), ("", 0),
]


@pytest.mark.parametrize(("hop", "internet"), FORWARDED_HOPS)
def test_the_compiled_walk_reads_a_forwarded_for_hop_as_the_pure_walk_does(hop, internet):
    """The caller's address is the first X-Forwarded-For hop without its port (else the client address, here
    private): the compiled walk reads it itself, and counts the same internet spans."""
    builder = TraceBuilder(seed=3, workloads=[Workload("orders")])
    builder.server_span("orders", "GET /", start=T0, client_address="10.0.0.2", forwarded_for=hop)
    value = encode_batch(builder.take(), "otlp_proto")
    assert COMPILED_WALK.walk(value, 1000, 128, 5) is not None
    compiled, pure = both(value)
    assert compiled == pure
    assert compiled[0][0]["internet_spans"] == internet


@pytest.mark.parametrize("hop", ["\u00a081.2.69.142", "1.2.3.4:\uff18\uff10", "81.2.69.142\u2003"])
def test_a_forwarded_for_hop_beyond_ascii_is_left_to_the_pure_walk(hop):
    """str.strip() and str.isdigit() know Unicode whitespace and digits: such a hop is the pure walk's to read."""
    builder = TraceBuilder(seed=3, workloads=[Workload("orders")])
    builder.server_span("orders", "GET /", start=T0, client_address="10.0.0.2", forwarded_for=hop)
    value = encode_batch(builder.take(), "otlp_proto")
    assert COMPILED_WALK.walk(value, 1000, 128, 5) is None
    compiled, pure = both(value)
    assert compiled == pure


@pytest.mark.parametrize("decoder", ["compiled", "python"])
def test_a_caller_address_is_classified_once_whatever_proxy_it_comes_through(monkeypatch, decoder):
    """Visitors behind several proxies make many combinations of caller attributes, more than the decoder keeps;
    whether an address is public (ipaddress, slow) is still worked out once per distinct address."""
    from stream.entities import resolve
    from stream.ingest.formats.otlp import fold, touches

    classified = []

    def counting(address: str) -> bool:
        classified.append(address)
        return resolve.is_public_address(address)

    monkeypatch.setattr(touches, "is_public_address", counting, raising=False)  # where it was looked up before
    monkeypatch.setattr(fold, "is_public_address", counting, raising=False)
    visitors = [f"81.2.69.{number}" for number in range(10)]
    builder = TraceBuilder(seed=3, workloads=[Workload("orders")])
    decoder_kept = OtlpDecoder(resolver(), cache_limit=16, decoder=decoder)
    for round_number in range(3):
        for proxy in ("10.0.0.5", "10.0.0.6", "10.0.0.7"):
            for visitor in visitors:
                builder.server_span("orders", "GET /", start=T0 + round_number, client_address=proxy,
                                    forwarded_for=visitor)
        touches_made = decoder_kept.decode(encode_batch(builder.take(), "otlp_proto")).touches
        assert [touch.internet_spans for touch in touches_made] == [30]
    assert sorted(classified) == sorted(visitors)


def _server_span_with_entry(entry: bytes) -> bytes:
    """One SERVER span of service orders whose only attribute is the given map entry's bytes, written by hand."""
    span = (wire_field(0x0A, TRACE_IDS[0]) + wire_field(0x12, SPAN_IDS[0]) + b"\x30\x02"
            + b"\x41" + (T0_NS + 1).to_bytes(8, "little") + wire_field(0x4A, entry))
    service = wire_field(0x0A, b"service.name") + wire_field(0x12, wire_field(0x0A, b"orders"))
    resource_spans = wire_field(0x0A, wire_field(0x0A, service)) + wire_field(0x12, wire_field(0x12, span))
    return wire_field(0x0A, resource_spans)


CLIENT_KEY, CLIENT_VALUE = wire_field(0x0A, b"client.address"), wire_field(0x12, wire_field(0x0A, b"81.2.69.142"))
LONG_VALUE = wire_field(0x12, wire_field(0x0A, b"81.2.69.142" + b" " * 140))  # a two-byte length


@pytest.mark.parametrize("entry", [
    CLIENT_KEY + CLIENT_VALUE, CLIENT_VALUE + CLIENT_KEY, CLIENT_KEY + CLIENT_KEY + CLIENT_VALUE,
    CLIENT_KEY + CLIENT_VALUE + b"\x18\x01", CLIENT_KEY + LONG_VALUE, b"\x0a\x8e\x00client.address" + CLIENT_VALUE,
    CLIENT_KEY + CLIENT_VALUE[:-1], b"\x0a\x0eclient.addres\xff" + CLIENT_VALUE,
], ids=["usual", "value-first", "key-twice", "extra-field", "long-value", "overlong-length", "cut", "not-utf8"])
def test_attribute_entries_in_any_layout_decode_as_the_pure_walk_decodes_them(entry):
    """The compiled walk reads the usual layout of an attribute entry directly, and any other as protobuf does."""
    compiled, pure = both(_server_span_with_entry(entry))
    assert compiled == pure
