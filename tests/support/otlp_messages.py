"""Real OTLP messages to damage, and the protobuf wire format written by hand for the floods no SDK makes."""

from __future__ import annotations

import orjson
from fuzzing import pick
from hypothesis import strategies as st
from inputs import POD
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
