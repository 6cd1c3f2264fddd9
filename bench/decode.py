"""OTLP decode-and-extract throughput next to a bare protobuf parse of the same messages.

The bare parse (``ExportTraceServiceRequest.FromString``) is the floor any Python decoder pays; the
ratio says what finding the touched entities costs on top of it. The decoder measured is the one the
worker runs (the compiled walk where it was built, see ``decoder_name()``), with the pure-Python walk
beside it. All are measured in one run, interleaved repeat by repeat, as CPU time of this process (a
shared machine's other work does not count against them), and the median of the repeats is reported.

    python -m bench.decode [--messages 200] [--spans 512] [--repeats 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from google.protobuf.internal import api_implementation
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.trace import SpanKind

from stream.demo.tracegen import TraceBuilder, Workload, aws_call, database, encode_batch, http_client
from stream.entities.resolve import EntityResolver
from stream.ingest.formats.otlp import OtlpDecoder, decoder_name
from stream.models import Asset

ACCOUNT = "123456789012"
REGION = "us-east-1"
SERVICES = ("frontend", "checkout", "orders", "inventory", "payments")


def measure(messages: list[bytes], repeats: int, resolver: EntityResolver | None = None) -> dict[str, float]:
    """Spans per second (medians) of one :class:`OtlpDecoder` as a worker keeps it, of one that walks in pure
    Python, and of the bare parse; the worker's decode time over the parse time."""
    resolver = resolver or EntityResolver()
    spans = sum(
        len(scope.spans)
        for message in messages
        for resource in ExportTraceServiceRequest.FromString(message).resource_spans
        for scope in resource.scope_spans
    )
    timed = {
        "bare_parse_spans_per_s": ExportTraceServiceRequest.FromString,
        "decode_spans_per_s": OtlpDecoder(resolver).decode,
        "decode_python_spans_per_s": OtlpDecoder(resolver, decoder="python").decode,
    }
    times: dict[str, list[float]] = {name: [] for name in timed}
    for _ in range(repeats):
        for name, run in timed.items():
            started = time.process_time()
            for message in messages:
                run(message)
            times[name].append(time.process_time() - started)
    medians = {name: statistics.median(taken) for name, taken in times.items()}
    return {
        **{name: spans / median for name, median in medians.items()},
        "ratio": medians["decode_spans_per_s"] / medians["bare_parse_spans_per_s"],
    }


def asset_resolver() -> EntityResolver:
    """The aliases a deployment's asset file would give: database hosts and internal services."""
    resolver = EntityResolver()
    resolver.add_asset(Asset(id=f"arn:aws:rds:{REGION}:{ACCOUNT}:db:orders", aliases=["orders-db.internal"]))
    resolver.add_asset(Asset(id=f"arn:aws:rds:{REGION}:{ACCOUNT}:db:payments", aliases=["payments-db.internal"]))
    for service in SERVICES:
        resolver.add_asset(Asset(id=f"service:{service}", aliases=[f"{service}.shop.svc.cluster.local"]))
    return resolver


def realistic_messages(count: int, spans_per_message: int, seed: int = 7) -> list[bytes]:
    """``count`` otlp_proto messages of about ``spans_per_message`` real SDK spans each.

    Each trace enters ``frontend`` over HTTP (from one of a thousand internet visitors, sometimes
    through a proxy, or from inside), calls ``checkout`` and then one backend that uses S3, DynamoDB, SQS,
    Secrets Manager or PostgreSQL, with the attribute sets real instrumentations send.
    """
    rng = random.Random(seed)
    visitors = [f"{rng.randrange(1, 223)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
                for _ in range(1000)]
    builder = TraceBuilder(seed=seed, workloads=[
        Workload(name, pod=f"{name}-7d9f8c6b5-{index:05d}", namespace="shop", region=REGION, account=ACCOUNT)
        for index, name in enumerate(SERVICES)
    ])
    messages = []
    clock = 1_700_000_000.0
    while len(messages) < count:
        while len(builder.spans) < spans_per_message:
            clock += 0.01
            _one_trace(builder, rng, clock, visitors)
        messages.append(encode_batch(builder.take(), "otlp_proto"))
    return messages


def _http_server_attributes(rng: random.Random, path: str) -> dict[str, object]:
    return {
        "url.scheme": "https", "url.path": path, "server.address": "shop.example.com", "server.port": 443,
        "network.protocol.version": "1.1", "user_agent.original": f"Mozilla/5.0 (build {rng.randrange(90, 130)})",
    }


def _one_trace(builder: TraceBuilder, rng: random.Random, clock: float, visitors: list[str]) -> None:
    public = rng.random() < 0.6
    client = rng.choice(visitors) if public else "10.0.3.17"
    forwarded = client if public and rng.random() < 0.3 else None
    path = rng.choice(("/cart", "/checkout", "/orders", "/products"))
    root = builder.server_span(
        "frontend", f"GET {path}", start=clock, duration=0.05, client_address="10.0.0.2" if forwarded else client,
        forwarded_for=forwarded, attributes=_http_server_attributes(rng, path),
    )
    call = builder.client_span(
        "frontend", "POST", start=clock + 0.001, duration=0.04, parent=root,
        attributes={**http_client("http://checkout.shop.svc.cluster.local:8080/api/checkout", "POST"),
                    "peer.service": "checkout"},
    )
    checkout = builder.server_span(
        "checkout", "POST /api/checkout", start=clock + 0.002, duration=0.035, parent=call, client_address="10.0.1.9",
        attributes=_http_server_attributes(rng, "/api/checkout"),
    )
    backend = rng.choice(("orders", "inventory", "payments"))
    hop = builder.client_span(
        "checkout", "GET", start=clock + 0.003, duration=0.03, parent=checkout,
        attributes=http_client(f"http://{backend}.shop.svc.cluster.local:8080/api/{backend}"),
    )
    served = builder.server_span(
        backend, f"GET /api/{backend}", start=clock + 0.004, duration=0.025, parent=hop, client_address="10.0.1.10",
        attributes=_http_server_attributes(rng, f"/api/{backend}"), error=rng.random() < 0.02,
    )
    for offset in range(rng.randrange(1, 4)):
        builder.client_span(
            backend, "call", start=clock + 0.005 + offset * 0.004, duration=0.003, parent=served,
            attributes=_backend_call(backend, rng), kind=SpanKind.CLIENT,
        )


def _backend_call(backend: str, rng: random.Random) -> dict[str, object]:
    choice = rng.randrange(6)
    if choice == 0:
        request_id = f"{rng.getrandbits(64):016X}"
        return aws_call("S3", "GetObject", {"aws.s3.bucket": f"{backend}-documents", "aws.request_id": request_id})
    if choice == 1:
        tables = (f"{backend}-items",)
        return aws_call("DynamoDB", "Query", {"aws.dynamodb.table_names": tables, "db.system.name": "aws.dynamodb"})
    if choice == 2:
        queue = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{backend}-events"
        return aws_call("SQS", "SendMessage", {"aws.sqs.queue.url": queue, "messaging.system": "aws_sqs"})
    if choice == 3:
        secret = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{backend}/db-AbCdEf"
        return aws_call("SecretsManager", "GetSecretValue", {"aws.secretsmanager.secret.arn": secret})
    host = "payments-db.internal" if backend == "payments" else "orders-db.internal"
    return database(
        "postgresql", host, backend, statement=f"SELECT * FROM items WHERE id = {rng.randrange(10_000)}",
        legacy=choice == 5,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--spans", type=int, default=512, help="spans per message")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"protobuf backend: {api_implementation.Type()}")
    started = time.perf_counter()
    messages = realistic_messages(args.messages, args.spans)
    print(f"generated {len(messages)} messages with opentelemetry-sdk in {time.perf_counter() - started:.1f}s "
          f"({sum(map(len, messages)) / len(messages) / 1024:.0f} KiB each)")
    figures = measure(messages, args.repeats, asset_resolver())
    for label, key in ((f"decode and extract ({decoder_name()})", "decode_spans_per_s"),
                       ("decode and extract (python)", "decode_python_spans_per_s"),
                       ("bare protobuf parse", "bare_parse_spans_per_s")):
        print(f"{label + ':':<38}{figures[key]:>12,.0f} spans/s  ({1e6 / figures[key]:.2f} µs/span)")
    print(f"ratio (decode time / parse time): {figures['ratio']:.2f}")


if __name__ == "__main__":
    main()
