"""Real OpenTelemetry spans for tests, the demo and the benchmark, encoded as the Collector writes them.

Spans come out of opentelemetry-sdk itself (one ``TracerProvider`` per service, so each service has
its own ``Resource``), collected in memory with explicit start and end times so event time is under
the caller's control. They are encoded as the Collector's Kafka exporter publishes them, one
``ExportTraceServiceRequest`` per Kafka record:

* ``otlp_proto``: the SDK's own OTLP encoder (``encode_spans``) serialized to bytes;
* ``otlp_json``: protobuf JSON with camelCase names, enums as numbers, 64-bit integers as strings and
  trace/span ids as hex (protobuf's JSON mapping would write base64; the OTLP spec says hex).

A :class:`TraceBuilder` makes parent/child relations across services in one trace; the attribute
helpers (:func:`aws_call`, :func:`database`, :func:`http_client`) write the semantic-convention
names real instrumentations send, new ones by default and the old ones with ``legacy=True``.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from google.protobuf import json_format
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

Encoding = Literal["otlp_proto", "otlp_json"]
Attributes = Mapping[str, Any]

DEFAULT_ACCOUNT = "123456789012"
DEFAULT_REGION = "us-east-1"
DEFAULT_SCOPE = "hotpath.tracegen"
_NS = 1_000_000_000
_ID_FIELDS = frozenset({"traceId", "spanId", "parentSpanId"})


class SeededIdGenerator(IdGenerator):
    """Reproducible trace and span ids, so a seeded scenario gives the same bytes on every run."""

    def __init__(self, seed: int | None = None):
        self._random = random.Random(seed)

    def generate_span_id(self) -> int:
        return self._random.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self._random.getrandbits(128) or 1

    def is_trace_id_random(self) -> bool:
        return True


@dataclass(frozen=True)
class Workload:
    """Where a service runs: becomes the ``Resource`` of every span the service emits."""

    service: str
    pod: str | None = None
    namespace: str = "default"
    region: str = DEFAULT_REGION
    account: str = DEFAULT_ACCOUNT
    extra: Mapping[str, Any] = field(default_factory=dict)

    def resource_attributes(self) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "service.name": self.service,
            "k8s.namespace.name": self.namespace,
            "cloud.provider": "aws",
            "cloud.region": self.region,
            "cloud.account.id": self.account,
        }
        if self.pod:
            attributes["k8s.pod.name"] = self.pod
        attributes.update(self.extra)
        return attributes


class TraceBuilder:
    """Builds real SDK spans service by service; every span ends at once with the times given.

    Times are epoch seconds (floats); the builder turns them into the SDK's nanoseconds. A span whose
    parent belongs to another service gets a *remote* parent context, as context propagation would
    give it, so the encoded spans carry the same flags a real deployment produces.
    """

    def __init__(self, seed: int | None = None, workloads: Iterable[Workload] = ()):
        self._ids = SeededIdGenerator(seed)
        self._exporter = InMemorySpanExporter()
        self._processor = SimpleSpanProcessor(self._exporter)
        self._workloads: dict[str, Workload] = {}
        self._providers: dict[str, TracerProvider] = {}
        self._tracers: dict[tuple[str, str], trace.Tracer] = {}
        self._service_of_span: dict[int, str] = {}
        for workload in workloads:
            self.add_workload(workload)

    def add_workload(self, workload: Workload) -> None:
        """Declare where ``workload.service`` runs; services used undeclared get a default workload."""
        self._workloads[workload.service] = workload
        self._providers.pop(workload.service, None)
        self._tracers = {key: tracer for key, tracer in self._tracers.items() if key[0] != workload.service}

    def _tracer(self, service: str, scope: str) -> trace.Tracer:
        """The tracer of one instrumentation scope in ``service``'s SDK (one provider per service)."""
        tracer = self._tracers.get((service, scope))
        if tracer is not None:
            return tracer
        provider = self._providers.get(service)
        if provider is None:
            workload = self._workloads.setdefault(service, Workload(service))
            provider = self._providers[service] = TracerProvider(
                sampler=ALWAYS_ON,
                resource=Resource.create(workload.resource_attributes()),
                id_generator=self._ids,
                shutdown_on_exit=False,
            )
            provider.add_span_processor(self._processor)
        tracer = self._tracers[(service, scope)] = provider.get_tracer(scope, "1.0.0")
        return tracer

    def span(
        self,
        service: str,
        name: str,
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        start: float,
        duration: float = 0.01,
        parent: ReadableSpan | None = None,
        attributes: Attributes | None = None,
        error: bool = False,
        scope: str = DEFAULT_SCOPE,
    ) -> ReadableSpan:
        """One finished span of ``service``; pass the returned span as ``parent`` of its children."""
        context = None
        if parent is not None:
            parent_context = parent.get_span_context()
            if self._service_of_span.get(parent_context.span_id) != service:
                parent_context = SpanContext(
                    parent_context.trace_id, parent_context.span_id, is_remote=True,
                    trace_flags=TraceFlags(TraceFlags.SAMPLED),
                )
            context = trace.set_span_in_context(NonRecordingSpan(parent_context))
        start_ns = int(start * _NS)
        sdk_span = self._tracer(service, scope).start_span(
            name, context=context, kind=kind, attributes=attributes, start_time=start_ns,
        )
        if error:
            sdk_span.set_status(Status(StatusCode.ERROR, "failed"))
        sdk_span.end(end_time=start_ns + int(duration * _NS))
        self._service_of_span[sdk_span.get_span_context().span_id] = service
        return sdk_span  # type: ignore[return-value]

    def server_span(
        self,
        service: str,
        name: str,
        *,
        start: float,
        duration: float = 0.02,
        client_address: str | None = None,
        forwarded_for: str | None = None,
        parent: ReadableSpan | None = None,
        attributes: Attributes | None = None,
        error: bool = False,
        legacy: bool = False,
    ) -> ReadableSpan:
        """An HTTP SERVER span; ``forwarded_for`` is captured as the request header, as instrumentations do."""
        method, _, route = name.partition(" ")
        server_attributes: dict[str, Any] = {
            ("http.method" if legacy else "http.request.method"): method or "GET",
            "http.route": route or "/",
            ("http.status_code" if legacy else "http.response.status_code"): 500 if error else 200,
        }
        if client_address is not None:
            server_attributes["net.sock.peer.addr" if legacy else "client.address"] = client_address
        if forwarded_for is not None:
            server_attributes["http.request.header.x-forwarded-for"] = (forwarded_for,)
        server_attributes.update(attributes or {})
        return self.span(
            service, name, kind=SpanKind.SERVER, start=start, duration=duration, parent=parent,
            attributes=server_attributes, error=error, scope="opentelemetry.instrumentation.asgi",
        )

    def client_span(
        self,
        service: str,
        name: str,
        *,
        start: float,
        attributes: Attributes,
        duration: float = 0.005,
        parent: ReadableSpan | None = None,
        kind: SpanKind = SpanKind.CLIENT,
        error: bool = False,
    ) -> ReadableSpan:
        """An outgoing call (CLIENT by default, or PRODUCER) described by its attributes."""
        return self.span(
            service, name, kind=kind, start=start, duration=duration, parent=parent,
            attributes=attributes, error=error,
        )

    @property
    def spans(self) -> list[ReadableSpan]:
        """Every span finished so far, in the order they ended."""
        return list(self._exporter.get_finished_spans())

    def take(self) -> list[ReadableSpan]:
        """The finished spans, forgetting them: the next batch starts empty."""
        spans = self.spans
        self._exporter.clear()
        self._service_of_span.clear()
        return spans

    def to_otlp_proto(self) -> bytes:
        return encode_batch(self.spans, "otlp_proto")

    def to_otlp_json(self) -> bytes:
        return encode_batch(self.spans, "otlp_json")


def encode_batch(spans: Sequence[ReadableSpan], encoding: Encoding = "otlp_proto") -> bytes:
    """One Kafka record value holding ``spans``, as the Collector's Kafka exporter writes it."""
    request = encode_spans(spans)
    if encoding == "otlp_proto":
        return request.SerializeToString()
    if encoding == "otlp_json":
        document = json_format.MessageToDict(request, use_integers_for_enums=True)
        return orjson.dumps(_hex_ids(document))
    raise ValueError(f"unknown encoding {encoding!r}")


def _hex_ids(node: Any) -> Any:
    """Rewrite protobuf JSON's base64 trace and span ids as the hex strings OTLP/JSON uses, in place."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_FIELDS and isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
            else:
                _hex_ids(value)
    elif isinstance(node, list):
        for item in node:
            _hex_ids(item)
    return node


def aws_call(
    rpc_service: str, operation: str, resource: Attributes | None = None, *, region: str = DEFAULT_REGION
) -> dict[str, Any]:
    """An AWS SDK call (``rpc.system`` = ``aws-api``) plus the attributes naming what it acts on.

    ``resource`` holds e.g. ``{"aws.s3.bucket": "invoices"}`` or ``{"aws.dynamodb.table_names": ("orders",)}``.
    """
    attributes: dict[str, Any] = {
        "rpc.system": "aws-api",
        "rpc.service": rpc_service,
        "rpc.method": operation,
        "aws.region": region,
    }
    attributes.update(resource or {})
    return attributes


def database(
    system: str, host: str, namespace: str, *, port: int = 5432, statement: str | None = None,
    legacy: bool = False,
) -> dict[str, Any]:
    """A database client call, with the old (``db.system``, ``db.name``, ``net.peer.name``) or new names."""
    if legacy:
        attributes: dict[str, Any] = {
            "db.system": system, "db.name": namespace, "net.peer.name": host, "net.peer.port": port,
        }
    else:
        attributes = {
            "db.system.name": system, "db.namespace": namespace, "server.address": host, "server.port": port,
        }
    if statement is not None:
        attributes["db.statement" if legacy else "db.query.text"] = statement
    return attributes


def http_client(url: str, method: str = "GET", *, status: int = 200, legacy: bool = False) -> dict[str, Any]:
    """An outgoing HTTP request, with the old (``http.url``) or new (``url.full``, ``server.address``) names."""
    if legacy:
        return {"http.method": method, "http.url": url, "http.status_code": status}
    host = url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    return {"http.request.method": method, "url.full": url, "server.address": host, "http.response.status_code": status}
