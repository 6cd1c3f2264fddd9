"""Real OTLP messages to damage, and the protobuf wire format written by hand for the floods no SDK makes."""

from __future__ import annotations

import base64

import orjson
from fuzzing import pick
from google.protobuf import json_format
from hypothesis import strategies as st
from inputs import POD
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status
from opentelemetry.trace import SpanKind

from stream.demo.tracegen import TraceBuilder, Workload, aws_call, database, encode_batch, http_client

T0 = 1_772_446_800.0


def message_spans() -> list[list]:
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


BATCHES = message_spans()
PROTO_MESSAGES = [encode_batch(spans, "otlp_proto") for spans in BATCHES]
JSON_DOCUMENTS = [orjson.loads(encode_batch(spans, "otlp_json")) for spans in BATCHES]


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


def varint(number: int) -> bytes:
    out = bytearray()
    while number >= 0x80:
        out.append(number & 0x7F | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def wire_field(tag: int, payload: bytes) -> bytes:
    return bytes([tag]) + varint(len(payload)) + payload


def payments_traffic(builder: TraceBuilder, start: float) -> None:
    """An internet request to payments-api that reads the ledger database."""
    request = builder.server_span("payments-api", "POST /charges", start=start, client_address="81.2.69.142")
    builder.client_span("payments-api", "SELECT ledger", start=start + 0.002, parent=request,
                        attributes=database("postgresql", "ledger.c9x2.eu-west-1.rds.amazonaws.com", "ledger"))


def traces_builder() -> TraceBuilder:
    return TraceBuilder(seed=7, workloads=[Workload("payments-api", pod=POD, namespace="payments",
                                                    region="eu-west-1", account="111122223333")])


# Generated ExportTraceServiceRequests, built with opentelemetry-proto's classes, for the decoders' equality tests:
# few trace, span and parent ids, keys and values, so that groups, duplicates, parents in and out of the message
# and the caps all come up; values include arrays, numbers, AWS endpoints, public and private callers.
NOT_UTF8 = "NOTUTF8!"  # replaced in the encoded bytes by as many bytes that are not UTF-8
SPAN_KEYS = (
    "aws.s3.bucket", "aws.dynamodb.table_names", "aws.lambda.invoked_arn", "aws.sqs.queue.url", "aws.queue_url",
    "aws.sns.topic.arn", "aws.secretsmanager.secret.arn", "rpc.system", "rpc.system.name", "server.address",
    "net.peer.name", "url.full", "http.url", "db.system", "db.system.name", "db.name", "db.namespace", "peer.service",
    "service.peer.name", "http.request.header.x-forwarded-for", "client.address", "http.client_ip",
    "network.peer.address", "net.sock.peer.addr", "http.request.method", "user_agent.original",
)
RESOURCE_KEYS = (
    "service.name", "faas.name", "k8s.deployment.name", "k8s.pod.name", "cloud.region", "cloud.account.id",
    "cloud.resource_id", "cloud.platform", "host.id", "telemetry.sdk.name",
)
SPAN_TEXTS = (
    "orders-db.internal", "acme.s3.amazonaws.com", "s3.us-east-1.amazonaws.com", "SQS.US-EAST-1.AMAZONAWS.COM",
    "api.example.com", "https://s3.us-east-1.amazonaws.com/acme-statements/2026.pdf",
    "https://sqs.us-east-1.amazonaws.com/123456789012/orders-events", "http://orders.internal/x",
    "81.2.69.142", "10.0.0.2", "2001:db8::1", "81.2.69.142, 10.0.0.1", "orders", "payments", "aws-api", "postgresql",
    "arn:aws:sns:us-east-1:123456789012:alerts", "arn:aws:lambda:us-east-1:123456789012:function:pay:live",
    "card 4111 1111 1111 1111", "", "ledger",
    # forwarded-for hops as proxies write them: ports, brackets, padding, whitespace only Python strips, odd digits
    "81.2.69.142:8443", "[2001:db8::1]:443", "[::1", " \x1f81.2.69.142 ,10.0.0.1", "\u00a081.2.69.142",
    "1.2.3.4:\uff18", "a.b.c:1", ", 81.2.69.142",
)
RESOURCE_TEXTS = (
    "orders", "payments", "unknown_service:python", "", "orders-7d9f8c6b5-x2k4q", "us-east-1", "123456789012",
    "aws_ec2", "i-0abc", "arn:aws:lambda:us-east-1:123456789012:function:pay:live", "arn:aws:ecs:task/1",
)
TRACE_IDS = tuple(bytes([n]) * 16 for n in range(1, 5))
SPAN_IDS = tuple(bytes([n]) * 8 for n in range(1, 7))
T0_NS = 1_772_446_800_000_000_000


def _any_value(draw: st.DrawFn, texts: tuple[str, ...], hostile: bool) -> AnyValue:
    shape = draw(st.sampled_from(("text", "text", "text", "array", "number", "empty")))
    pool = st.sampled_from((*texts, NOT_UTF8) if hostile else texts)
    if shape == "text":
        return AnyValue(string_value=draw(pool))
    if shape == "array":
        return AnyValue(array_value=ArrayValue(values=[AnyValue(string_value=text) for text in draw(
            st.lists(pool, max_size=3))]))
    return AnyValue(int_value=draw(st.integers(0, 9))) if shape == "number" else AnyValue()


def _attributes(draw: st.DrawFn, keys: tuple[str, ...], texts: tuple[str, ...], hostile: bool) -> list[KeyValue]:
    """Attributes with keys drawn with repetition: a repeated key is a duplicate, whose last value counts; now and
    then more than the tests' limit of 7."""
    most = draw(st.sampled_from((0, 2, 6, 6, 10)))  # few or none: spans that share a group
    return [KeyValue(key=key, value=_any_value(draw, texts, hostile))
            for key in draw(st.lists(st.sampled_from(keys), max_size=most))]


def _span(draw: st.DrawFn, hostile: bool) -> Span:
    return Span(
        trace_id=draw(st.sampled_from((*TRACE_IDS, b"\x01" * 15) if hostile else TRACE_IDS)),
        span_id=draw(st.sampled_from(SPAN_IDS)),
        parent_span_id=draw(st.sampled_from((b"", b"\x09" * 8, *SPAN_IDS))),
        kind=draw(st.sampled_from((0, 1, 2, 2, 3, 3, 4, 5, 9))),
        end_time_unix_nano=T0_NS + draw(st.integers(1, 50)) * 1_000_000,
        attributes=_attributes(draw, SPAN_KEYS, SPAN_TEXTS, hostile),
        status=Status(code=draw(st.sampled_from((0, 1, 2)))),
    )


@st.composite
def otlp_requests(draw: st.DrawFn, hostile: bool = False) -> ExportTraceServiceRequest:
    """An ExportTraceServiceRequest of up to four resources (the same service may send several)."""
    return ExportTraceServiceRequest(resource_spans=[
        ResourceSpans(
            resource=Resource(attributes=_attributes(draw, RESOURCE_KEYS, RESOURCE_TEXTS, hostile)),
            scope_spans=[ScopeSpans(spans=[_span(draw, hostile) for _ in range(draw(st.integers(0, 5)))])
                         for _ in range(draw(st.integers(1, 2)))],
        ) for _ in range(draw(st.integers(1, 4)))
    ])


def proto_bytes(request: ExportTraceServiceRequest) -> bytes:
    """The request's otlp_proto bytes, with each NOT_UTF8 text made bytes that are not UTF-8."""
    return request.SerializeToString().replace(NOT_UTF8.encode(), b"\xff\xfe" * (len(NOT_UTF8) // 2))


def json_bytes(request: ExportTraceServiceRequest) -> bytes:
    """The request's otlp_json bytes: protobuf's JSON mapping with ids in hex, as OTLP/JSON has them."""
    document = json_format.MessageToDict(request, use_integers_for_enums=True)
    for resource in document.get("resourceSpans", []):
        for scope in resource.get("scopeSpans", []):
            for span in scope.get("spans", []):
                for id_field in ("traceId", "spanId", "parentSpanId"):
                    if id_field in span:
                        span[id_field] = base64.b64decode(span[id_field]).hex()
    return orjson.dumps(document)


def inbound_request(service: str, trace_ids: list[bytes]) -> bytes:
    """One resource's SERVER spans that all fall in one group, with these trace ids in this order."""
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource=Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value=service))]),
        scope_spans=[ScopeSpans(spans=[
            Span(trace_id=trace_id, span_id=bytes([n + 1]) * 8, kind=Span.SPAN_KIND_SERVER,
                 end_time_unix_nano=T0_NS + n) for n, trace_id in enumerate(trace_ids)])],
    )]).SerializeToString()
