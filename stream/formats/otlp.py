"""OTLP traces (as the Collector's Kafka exporter writes them) folded into per-entity touches.

One Kafka message is one ``ExportTraceServiceRequest``: ``otlp_proto`` (protobuf) or ``otlp_json``
(protobuf JSON with hex trace and span ids). :func:`decode_traces` folds every span of the message
into one :class:`~stream.models.Touch` per entity it reaches, so downstream cost follows entities
per message, not spans.

Attributes read (old and new semantic-convention names side by side):

* resource: ``service.name`` (else ``faas.name``, ``k8s.deployment.name``, ``k8s.statefulset.name``,
  ``k8s.daemonset.name``, or the deployment of ``k8s.pod.name``), ``k8s.pod.name``,
  ``cloud.region``, ``cloud.account.id``, ``cloud.resource_id``, ``cloud.platform``, ``host.id``;
* AWS: ``aws.s3.bucket``, ``aws.dynamodb.table_names``, ``aws.lambda.invoked_arn``,
  ``aws.sqs.queue.url`` / ``aws.queue_url``, ``aws.sns.topic.arn``,
  ``aws.secretsmanager.secret.arn``, ``rpc.system`` / ``rpc.system.name`` (``aws-api``);
* peers and databases: ``peer.service`` / ``service.peer.name``, ``server.address`` /
  ``net.peer.name``, ``url.full`` / ``http.url``, ``db.system`` / ``db.system.name``,
  ``db.name`` / ``db.namespace``;
* callers of SERVER spans: ``http.request.header.x-forwarded-for`` (first hop), ``client.address`` /
  ``http.client_ip``, ``network.peer.address`` / ``net.sock.peer.addr``.

What a span touches:

* SERVER and CONSUMER spans touch their own service (``service:NAME``) and, when the resource names
  it, the workload's cloud identity (``cloud.resource_id`` when it is an ARN, else the EC2 instance
  of ``host.id`` on ``cloud.platform`` = ``aws_ec2``). The caller is the service of the parent span
  when the parent is in the same message and belongs to another service, else the service an asset
  alias gives the caller's address. A SERVER span whose caller address (first X-Forwarded-For hop,
  else the client or peer address) is globally routable counts as internet traffic.
* Any span touches the AWS resources its attributes name (S3 buckets also from a virtual-hosted or
  path-style S3 address, SQS queues also from the queue URL); region and account come from the
  resource when the attribute gives only a name.
* CLIENT and PRODUCER spans without AWS resources touch their peer: ``peer.service`` as a service,
  else the host (``server.address``, ``net.peer.name`` or the URL's host) as an asset alias names it.
  A database host no asset claims becomes ``db:SYSTEM://HOST/NAMESPACE``; any other unclaimed host
  (plain HTTP, or an AWS endpoint naming no resource) is not an entity and is skipped. INTERNAL spans
  touch only AWS resources and databases. The caller of these touches is the span's own service.

Speed: protobuf is parsed once, with a lean schema that is wire-compatible with OTLP (span
attributes read as a map, whose wire layout is exactly the repeated ``KeyValue``), so unneeded
fields are skipped in C and the wanted keys are picked out by a set intersection rather than a
Python walk. Whatever depends only on the resource is computed once per resource; what depends on
the wanted attribute values is computed once per distinct value set ("plan") and cached for the
message; per span only counters move. Duplicate attribute keys keep the last value (OTLP requires
unique keys), so the per-span attribute limit counts distinct keys.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal
from urllib.parse import urlsplit

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError as ProtobufDecodeError
from google.protobuf.message import Message

from stream.entities import (
    EntityResolver,
    aws_arn,
    bucket_from_host,
    deployment_of_pod,
    dynamodb_table_arn,
    ec2_instance_arn,
    is_public_address,
    is_service,
    s3_bucket_arn,
    service_entity,
    sqs_queue_arn,
)
from stream.formats import jsonsafe
from stream.formats.limits import DecodeLimits
from stream.models import DecodeError, Touch, TraceBatch

Encoding = Literal["otlp_proto", "otlp_json"]

SPAN_KIND_INTERNAL, SPAN_KIND_SERVER, SPAN_KIND_CLIENT, SPAN_KIND_PRODUCER, SPAN_KIND_CONSUMER = 1, 2, 3, 4, 5
_KIND_NAMES = {
    "SPAN_KIND_UNSPECIFIED": 0, "SPAN_KIND_INTERNAL": 1, "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3, "SPAN_KIND_PRODUCER": 4, "SPAN_KIND_CONSUMER": 5,
}
_INBOUND = frozenset({SPAN_KIND_SERVER, SPAN_KIND_CONSUMER})
_OUTBOUND = frozenset({SPAN_KIND_CLIENT, SPAN_KIND_PRODUCER})
STATUS_CODE_ERROR = 2
_NS_PER_S = 1e9

# Span attributes, old and new names mapped to one canonical name each.
_AWS_KEYS = {
    "aws.s3.bucket": "aws.s3.bucket",
    "aws.dynamodb.table_names": "aws.dynamodb.table_names",
    "aws.lambda.invoked_arn": "aws.lambda.invoked_arn",
    "aws.sqs.queue.url": "aws.sqs.queue.url",
    "aws.queue_url": "aws.sqs.queue.url",
    "aws.sns.topic.arn": "aws.sns.topic.arn",
    "aws.secretsmanager.secret.arn": "aws.secretsmanager.secret.arn",
    "rpc.system": "rpc.system",
    "rpc.system.name": "rpc.system",
}
_TARGET_KEYS = {
    "server.address": "server.address",
    "net.peer.name": "server.address",
    "url.full": "url.full",
    "http.url": "url.full",
}
_DB_KEYS = {
    "db.system": "db.system",
    "db.system.name": "db.system",
    "db.name": "db.namespace",
    "db.namespace": "db.namespace",
}
_PEER_SERVICE_KEYS = {"peer.service": "peer.service", "service.peer.name": "peer.service"}
_CALLER_KEYS = {
    "http.request.header.x-forwarded-for": "x-forwarded-for",
    "client.address": "client.address",
    "http.client_ip": "client.address",
    "network.peer.address": "network.peer.address",
    "net.sock.peer.addr": "network.peer.address",
}
_CALLER_SLOTS = tuple(dict.fromkeys(_CALLER_KEYS.values()))
_CANONICAL = {**_AWS_KEYS, **_TARGET_KEYS, **_DB_KEYS, **_PEER_SERVICE_KEYS, **_CALLER_KEYS}

# Which attribute keys matter depends only on the span kind.
_INBOUND_WANTED = frozenset({**_AWS_KEYS, **_CALLER_KEYS})
_OUTBOUND_WANTED = frozenset({**_AWS_KEYS, **_TARGET_KEYS, **_DB_KEYS, **_PEER_SERVICE_KEYS})
_INTERNAL_WANTED = frozenset({**_AWS_KEYS, **_TARGET_KEYS, **_DB_KEYS})
_WANTED_BY_KIND: dict[int, frozenset[str]] = {
    SPAN_KIND_SERVER: _INBOUND_WANTED, SPAN_KIND_CONSUMER: _INBOUND_WANTED,
    SPAN_KIND_CLIENT: _OUTBOUND_WANTED, SPAN_KIND_PRODUCER: _OUTBOUND_WANTED,
}

_RESOURCE_KEYS = frozenset({
    "service.name", "faas.name", "k8s.deployment.name", "k8s.statefulset.name", "k8s.daemonset.name",
    "k8s.pod.name", "cloud.region", "cloud.account.id", "cloud.resource_id", "cloud.platform", "host.id",
})
_SERVICE_NAME_FALLBACKS = ("faas.name", "k8s.deployment.name", "k8s.statefulset.name", "k8s.daemonset.name")

_S3_PATH_STYLE_HOST = re.compile(r"^s3(?:[.\-](?:dualstack\.)?[a-z0-9\-]+)?\.amazonaws\.com$")
_QUEUE_PATH = re.compile(r"^/(?P<account>\d{12})/(?P<name>[^/?#]+)$")

AttributeValue = str | tuple[str, ...]
Found = tuple[tuple[str, Any], ...]
# workload, kind, found attribute values, end time (ns), error, trace id, span id, parent span id
SpanRow = tuple["_Workload", int, Found, int, bool, bytes, bytes, bytes]


def detect_encoding(value: bytes) -> Encoding:
    """``otlp_json`` when the record is a JSON object, else ``otlp_proto``."""
    return "otlp_json" if bytes(value[:64]).lstrip()[:1] == b"{" else "otlp_proto"


def decode_traces(
    value: bytes,
    resolver: EntityResolver,
    *,
    encoding: Encoding = "otlp_proto",
    limits: DecodeLimits | None = None,
) -> TraceBatch:
    """Fold one OTLP trace message into touches; raises only :class:`DecodeError`."""
    limits = limits or DecodeLimits()
    if not isinstance(value, bytes | bytearray | memoryview):
        raise DecodeError(f"an OTLP record must be bytes, got {type(value).__name__}")
    if len(value) > limits.max_record_bytes:
        raise DecodeError(
            f"record is {len(value)} bytes, over the {limits.max_record_bytes}-byte limit (HOTPATH_MAX_RECORD_BYTES)"
        )
    if encoding == "otlp_proto":
        fold = _Fold(resolver, limits, _proto_value)
        fold.fold(_proto_spans(value, fold, limits))
    elif encoding == "otlp_json":
        fold = _Fold(resolver, limits, _as_is)
        fold.fold(_json_spans(value, fold, limits))
    else:
        raise DecodeError(f"unknown trace encoding {encoding!r} (expected otlp_proto or otlp_json)")
    return fold.batch()


# --- the fold shared by both encodings -------------------------------------------------------------


class _Workload:
    """What one resource contributes to each of its spans, computed once per resource."""

    __slots__ = ("service", "identity", "region", "account")

    def __init__(self, attributes: dict[str, Any]):
        name = _text(attributes.get("service.name"))
        if not name or name.startswith("unknown_service"):
            name = next((_text(attributes.get(key)) for key in _SERVICE_NAME_FALLBACKS if attributes.get(key)), None)
        pod = _text(attributes.get("k8s.pod.name"))
        if not name and pod:
            name = deployment_of_pod(pod)
        self.service = service_entity(name) if name else None
        self.region = _text(attributes.get("cloud.region"))
        self.account = _text(attributes.get("cloud.account.id"))
        self.identity = _workload_identity(attributes, self.region, self.account)


class _Tally:
    """The running fold of one entity's touch."""

    __slots__ = ("spans", "errors", "internet", "first", "last", "trace_ids", "callers")

    def __init__(self) -> None:
        self.spans = 0
        self.errors = 0
        self.internet = 0
        self.first = 1 << 64
        self.last = -1
        self.trace_ids: list[bytes] = []
        self.callers: dict[str, None] = {}


class _Plan:
    """What every span with the same resource, kind and wanted attribute values does to the tallies."""

    __slots__ = ("tallies", "internet", "service", "fallback_caller", "needs_fallback")

    def __init__(self, tallies: tuple[_Tally, ...], internet: bool, fallback_caller: str | None, service: str | None):
        self.tallies = tallies
        self.internet = internet
        self.fallback_caller = fallback_caller
        self.service = service
        self.needs_fallback = fallback_caller is not None


class _Fold:
    """One message's spans folded into touches; ``decode_value`` turns a found attribute value into text."""

    def __init__(self, resolver: EntityResolver, limits: DecodeLimits, decode_value: Callable[[Any], AttributeValue]):
        self.resolver = resolver
        self.decode_value = decode_value
        self.max_trace_ids = limits.max_trace_ids
        self.tallies: dict[str, _Tally] = {}
        self.plans: dict[tuple[_Workload, int, Found], _Plan] = {}
        self.target_tallies: dict[tuple[_Workload, int, Found], tuple[_Tally, ...]] = {}
        self.caller_facts: dict[tuple[int, str | None, Found], tuple[bool, str | None]] = {}
        self.pods: dict[str, str] = {}
        self.span_count = 0
        self.service_of_span: dict[bytes, str | None] = {}
        self.awaiting_parent: list[tuple[bytes, _Plan]] = []

    def workload(self, attributes: dict[str, Any]) -> _Workload:
        workload = _Workload(attributes)
        pod = _text(attributes.get("k8s.pod.name"))
        if pod and workload.service:
            self.pods[pod] = workload.service
        return workload

    def fold(self, spans: Iterable[SpanRow]) -> None:
        """The hot loop: each span moves the counters of the touches its plan names, nothing more.

        ``span_id`` is given only when callers may be looked up (several resources in the message),
        ``parent_id`` only for inbound spans.
        """
        plans = self.plans
        service_of_span = self.service_of_span
        awaiting_parent = self.awaiting_parent
        sample_size = self.max_trace_ids
        for workload, kind, found, end_ns, error, trace_id, span_id, parent_id in spans:
            plan = plans.get((workload, kind, found))
            if plan is None:
                plan = plans[(workload, kind, found)] = self._plan(workload, kind, found)
            if span_id:
                service_of_span[span_id] = workload.service
            if parent_id:
                awaiting_parent.append((parent_id, plan))
            elif plan.needs_fallback:
                plan.needs_fallback = False
                _add_caller(plan.tallies, plan.fallback_caller)
            internet = plan.internet
            for tally in plan.tallies:
                tally.spans += 1
                if error:
                    tally.errors += 1
                if internet:
                    tally.internet += 1
                if end_ns < tally.first:
                    tally.first = end_ns
                if end_ns > tally.last:
                    tally.last = end_ns
                sample = tally.trace_ids
                if len(sample) < sample_size and trace_id not in sample:
                    sample.append(trace_id)

    def batch(self) -> TraceBatch:
        for parent_id, plan in self.awaiting_parent:
            caller = self.service_of_span.get(parent_id)
            if caller is not None and caller != plan.service:
                _add_caller(plan.tallies, caller)
            elif plan.fallback_caller is not None:
                _add_caller(plan.tallies, plan.fallback_caller)
        touches = [
            Touch(
                entity=entity, services=list(tally.callers), spans=tally.spans, errors=tally.errors,
                internet_spans=tally.internet, first_seen=tally.first / _NS_PER_S, last_seen=tally.last / _NS_PER_S,
                trace_ids=[trace_id.hex() for trace_id in tally.trace_ids],
            )
            for entity, tally in self.tallies.items()
        ]
        return TraceBatch(touches=touches, pods=self.pods, span_count=self.span_count)

    def _tally(self, entity: str) -> _Tally:
        tally = self.tallies.get(entity)
        if tally is None:
            tally = self.tallies[entity] = _Tally()
        return tally

    def _plan(self, workload: _Workload, kind: int, found: Found) -> _Plan:
        """Cold path: what a new combination of resource, kind and attribute values touches.

        Targets and caller facts are cached apart, so a new client address costs a lookup, not a plan.
        """
        values = {_CANONICAL[key]: self.decode_value(value) for key, value in found}
        caller_values = tuple((slot, values.pop(slot)) for slot in _CALLER_SLOTS if slot in values)
        target_key = (workload, kind, tuple(sorted(values.items())))
        tallies = self.target_tallies.get(target_key)
        if tallies is None:
            tallies = self.target_tallies[target_key] = self._target_tallies(workload, kind, values)
        if kind not in _INBOUND:
            return _Plan(tallies, False, None, workload.service)
        caller_key = (kind, workload.service, caller_values)
        facts = self.caller_facts.get(caller_key)
        if facts is None:
            facts = self.caller_facts[caller_key] = self._caller_facts(kind, workload.service, dict(caller_values))
        return _Plan(tallies, *facts, workload.service)

    def _target_tallies(self, workload: _Workload, kind: int, values: dict[str, AttributeValue]) -> tuple[_Tally, ...]:
        targets = _aws_targets(values, workload)
        if kind in _INBOUND:
            own = [entity for entity in (workload.service, workload.identity) if entity]
            targets = own + [target for target in targets if target not in own]
        elif not targets and not _is_aws_call(values):
            target = self._peer_target(values, outbound=kind in _OUTBOUND)
            targets = [target] if target else []
        tallies = tuple(self._tally(entity) for entity in dict.fromkeys(targets))
        if kind not in _INBOUND:
            _add_caller(tallies, workload.service)
        return tallies

    def _caller_facts(self, kind: int, own_service: str | None, values: dict[str, AttributeValue]) -> tuple[bool, str | None]:
        """Is the caller on the internet (SERVER spans only), and which service its address names."""
        internet = kind == SPAN_KIND_SERVER and is_public_address(_caller_address(values))
        for slot in ("client.address", "network.peer.address"):
            address = _text(values.get(slot))
            entity = self.resolver.resolve(address) if address else None
            if entity is not None and is_service(entity) and entity != own_service:
                return internet, entity
        return internet, None

    def _peer_target(self, values: dict[str, AttributeValue], *, outbound: bool) -> str | None:
        is_database = "db.system" in values or "db.namespace" in values
        if not outbound and not is_database:
            return None
        peer_service = _text(values.get("peer.service"))
        if peer_service and outbound:
            return service_entity(peer_service)
        host = _target_host(values)
        if not host:
            return None
        claimed = self.resolver.resolve(host)
        if claimed is not None:
            return claimed
        if is_database:
            system = _text(values.get("db.system")) or "unknown"
            namespace = _text(values.get("db.namespace"))
            return f"db:{system}://{host}" + (f"/{namespace}" if namespace else "")
        return None

def _add_caller(tallies: Iterable[_Tally], caller: str | None) -> None:
    if caller:
        for tally in tallies:
            tally.callers[caller] = None


def _text(value: Any) -> str | None:
    """A single string attribute value; arrays and other types are not one."""
    return value if isinstance(value, str) and value else None


def _texts(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,) if value else ()
    return value if isinstance(value, tuple) else ()


def _workload_identity(attributes: dict[str, Any], region: str | None, account: str | None) -> str | None:
    resource_id = _text(attributes.get("cloud.resource_id"))
    if resource_id and resource_id.startswith("arn:"):
        return _unqualified_lambda_arn(resource_id)
    host_id = _text(attributes.get("host.id"))
    if host_id and attributes.get("cloud.platform") == "aws_ec2":
        return ec2_instance_arn(host_id, region, account)
    return None


def _unqualified_lambda_arn(arn: str) -> str:
    """``arn:aws:lambda:R:A:function:NAME:ALIAS`` -> the function itself, which is what findings name."""
    parts = arn.split(":")
    if len(parts) > 7 and parts[2] == "lambda" and parts[5] == "function":
        return ":".join(parts[:7])
    return arn


def _is_aws_call(values: dict[str, AttributeValue]) -> bool:
    return values.get("rpc.system") == "aws-api"


def _aws_targets(values: dict[str, AttributeValue], workload: _Workload) -> list[str]:
    targets = []
    bucket = _text(values.get("aws.s3.bucket"))
    if bucket:
        targets.append(s3_bucket_arn(bucket))
    for table in _texts(values.get("aws.dynamodb.table_names")):
        targets.append(dynamodb_table_arn(table, workload.region, workload.account))
    function = _text(values.get("aws.lambda.invoked_arn"))
    if function and function.startswith("arn:"):
        targets.append(_unqualified_lambda_arn(function))
    queue_url = _text(values.get("aws.sqs.queue.url"))
    queue = _queue_arn(queue_url, workload) if queue_url else None
    if queue:
        targets.append(queue)
    for key in ("aws.sns.topic.arn", "aws.secretsmanager.secret.arn"):
        arn = _text(values.get(key))
        if arn and arn.startswith("arn:"):
            targets.append(arn)
    if not targets:
        targets.extend(_aws_endpoint_targets(values, workload))
    return targets


def _aws_endpoint_targets(values: dict[str, AttributeValue], workload: _Workload) -> list[str]:
    """Resources named only by the address called: S3 virtual-hosted or path-style, SQS queue URLs."""
    url = _text(values.get("url.full"))
    host = _target_host(values)
    if host is None:
        return []
    bucket = bucket_from_host(host)
    if bucket:
        return [s3_bucket_arn(bucket)]
    if url and _S3_PATH_STYLE_HOST.match(host):
        path_bucket = urlsplit(url).path.lstrip("/").split("/", 1)[0]
        return [s3_bucket_arn(path_bucket)] if path_bucket else []
    queue = sqs_queue_arn(url) if url and host.endswith(".amazonaws.com") else None
    return [queue] if queue else []


def _queue_arn(url: str, workload: _Workload) -> str | None:
    """An SQS queue URL's ARN; local endpoints (``http://host:port/ACCOUNT/NAME``) take the resource's region."""
    arn = sqs_queue_arn(url)
    if arn:
        return arn
    try:
        match = _QUEUE_PATH.match(urlsplit(url).path)
    except ValueError:
        return None
    return aws_arn("sqs", workload.region, match.group("account"), match.group("name")) if match else None


def _target_host(values: dict[str, AttributeValue]) -> str | None:
    host = _text(values.get("server.address"))
    if host is None:
        url = _text(values.get("url.full"))
        if url is None:
            return None
        try:
            host = urlsplit(url).hostname
        except ValueError:
            return None
    return host.lower() if host else None


def _caller_address(values: dict[str, AttributeValue]) -> str:
    """Who called: the first X-Forwarded-For hop when captured, else the client or peer address."""
    forwarded = ",".join(_texts(values.get("x-forwarded-for")))
    first_hop = forwarded.split(",", 1)[0].strip()
    if first_hop:
        return _without_port(first_hop)
    return _text(values.get("client.address")) or _text(values.get("network.peer.address")) or ""


def _without_port(address: str) -> str:
    if address.startswith("["):
        return address[1:].split("]", 1)[0]
    host, separator, port = address.rpartition(":")
    return host if separator and host.count(".") == 3 and port.isdigit() else address


# --- otlp_proto --------------------------------------------------------------------------------------


def _lean_schema() -> descriptor_pool.DescriptorPool:
    """OTLP trace messages reduced to the fields hotpath reads, wire-compatible with OTLP.

    Everything else (names, start times, events, links, scopes) is skipped by the parser as unknown
    fields. Span and resource attributes are declared as maps from key to the still-serialized
    ``AnyValue`` (map entries encode exactly like the OTLP ``KeyValue`` list), so values are only
    decoded for the few keys hotpath wants.
    """
    field = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="hotpath/lean_otlp_trace.proto", package="hotpath.lean", syntax="proto3")

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
    message("AnyValue", [("string_value", 1, field.TYPE_STRING, one, ""), ("array_value", 5, field.TYPE_MESSAGE, one, "ArrayValue")])
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
_SPAN_ATTRIBUTE_TAG = b"\x4a"  # field 9, length-delimited: how every span attribute starts on the wire


def _check_duplicate_attribute_flood(value: bytes, span_count: int, max_attributes: int) -> None:
    """Refuse a flood of attribute entries that the map view would fold away.

    The map view keeps one entry per key, so a span repeating one key a million times passes the
    per-span check on distinct keys. Every span attribute starts with one tag byte on the wire; only
    when that byte occurs more often than ``span_count`` spans may legitimately carry attributes is
    the message parsed a second (cheap) time to count every entry, so ordinary messages never pay.
    """
    if value.count(_SPAN_ATTRIBUTE_TAG) <= span_count * max_attributes:
        return
    for resource in _CountedRequest.FromString(value).resource_spans:
        for scope in resource.scope_spans:
            for span in scope.spans:
                if len(span.attributes) > max_attributes:
                    raise DecodeError(_too_many_attributes(len(span.attributes), max_attributes))


class _ErrorStatuses(dict[bytes, bool]):
    """Serialized ``Status`` -> is it ERROR; the handful of distinct encodings are parsed once each."""

    def __missing__(self, encoded: bytes) -> bool:
        try:
            error = _LeanStatus.FromString(encoded).code == STATUS_CODE_ERROR
        except ProtobufDecodeError:
            raise DecodeError("span status is not a valid protobuf Status") from None
        if len(self) < 256:
            self[encoded] = error
        return error


_is_error_status = _ErrorStatuses()


_SPAN_FIELDS = operator.attrgetter("kind", "end_time_unix_nano", "status", "trace_id")


def _proto_spans(value: bytes, fold: _Fold, limits: DecodeLimits) -> Iterator[SpanRow]:
    """Span rows of an ``otlp_proto`` message; found values stay serialized until a plan needs them."""
    try:
        request = _LeanRequest.FromString(value)
    except ProtobufDecodeError as exc:
        raise DecodeError(f"not a valid OTLP protobuf ExportTraceServiceRequest ({exc})") from None
    resource_spans = request.resource_spans
    span_count = sum(len(scope.spans) for resource in resource_spans for scope in resource.scope_spans)
    _check_span_count(span_count, limits)
    max_attributes = limits.max_attributes_per_span
    _check_duplicate_attribute_flood(value, span_count, max_attributes)
    fold.span_count = span_count
    track_span_ids = len(resource_spans) > 1
    error_status = _is_error_status
    wanted_by_kind = _WANTED_BY_KIND
    for resource in resource_spans:
        resource_attributes = resource.resource.attributes
        workload = fold.workload({key: _proto_value(resource_attributes[key]) for key in _RESOURCE_KEYS.intersection(resource_attributes)})
        for scope in resource.scope_spans:
            for span in scope.spans:
                attributes = span.attributes
                if len(attributes) > max_attributes:
                    raise DecodeError(_too_many_attributes(len(attributes), max_attributes))
                kind, end_ns, status, trace_id = _SPAN_FIELDS(span)
                if len(trace_id) != 16:
                    raise DecodeError(f"span trace id is {len(trace_id)} bytes, expected 16")
                hits = wanted_by_kind.get(kind, _INTERNAL_WANTED).intersection(attributes)
                yield (
                    workload, kind, tuple(zip(hits, map(attributes.__getitem__, hits), strict=True)), end_ns, error_status[status],
                    trace_id, span.span_id if track_span_ids else b"", span.parent_span_id if kind in _INBOUND else b"",
                )


def _proto_value(encoded: bytes) -> AttributeValue:
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


# --- otlp_json ---------------------------------------------------------------------------------------


def _as_is(value: AttributeValue) -> AttributeValue:
    return value


def _json_spans(value: bytes, fold: _Fold, limits: DecodeLimits) -> Iterator[SpanRow]:
    """Span rows of an ``otlp_json`` message, walked straight from orjson's dicts."""
    document = jsonsafe.expect_dict(jsonsafe.loads(value, limits.max_record_bytes), "an OTLP/JSON trace message")
    resources = _json_list(document, "resourceSpans", "the message")
    scopes_of = [
        (resource, [_json_list(scope, "spans", "scopeSpans[]") for scope in _json_list(resource, "scopeSpans", "resourceSpans[]")])
        for resource in resources
    ]
    span_count = sum(len(spans) for _, span_lists in scopes_of for spans in span_lists)
    _check_span_count(span_count, limits)
    fold.span_count = span_count
    track_span_ids = len(resources) > 1
    max_attributes = limits.max_attributes_per_span
    for resource, span_lists in scopes_of:
        resource_object = jsonsafe.expect_dict(resource.get("resource", {}), "resourceSpans[].resource")
        workload = fold.workload(_json_attributes(resource_object.get("attributes"), _RESOURCE_KEYS, max_attributes))
        for spans in span_lists:
            for span in spans:
                if not isinstance(span, dict):
                    raise DecodeError(f"a span must be a JSON object, got {type(span).__name__}")
                kind = _json_kind(span.get("kind", 0))
                wanted = _WANTED_BY_KIND.get(kind, _INTERNAL_WANTED)
                found = tuple(_json_attributes(span.get("attributes"), wanted, max_attributes).items())
                status = span.get("status") or {}
                error = isinstance(status, dict) and status.get("code") in (STATUS_CODE_ERROR, "STATUS_CODE_ERROR")
                yield (
                    workload, kind, found, _json_time(span.get("endTimeUnixNano")), error,
                    _json_id(span.get("traceId"), 16, "traceId"),
                    _json_id(span.get("spanId"), 8, "spanId") if track_span_ids else b"",
                    _json_id(span.get("parentSpanId"), 8, "parentSpanId", required=False) if kind in _INBOUND else b"",
                )


def _json_list(obj: Any, key: str, where: str) -> list[Any]:
    if not isinstance(obj, dict):
        raise DecodeError(f"{where} must be a JSON object, got {type(obj).__name__}")
    return jsonsafe.expect_list(obj.get(key, []), f"{where}.{key}")


def _json_kind(kind: Any) -> int:
    if isinstance(kind, int) and not isinstance(kind, bool):
        return kind
    if isinstance(kind, str) and kind in _KIND_NAMES:
        return _KIND_NAMES[kind]
    raise DecodeError(f"span kind must be a SpanKind number or name, got {kind!r:.60}")


def _json_time(value: Any) -> int:
    """OTLP/JSON writes 64-bit integers as strings; plain numbers are accepted too."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isdigit() and len(value) <= 20:
        return int(value)
    raise DecodeError(f"span endTimeUnixNano must be a non-negative integer, got {value!r:.60}")


def _json_id(value: Any, size: int, name: str, *, required: bool = True) -> bytes:
    """OTLP/JSON ids are hex (not base64 as protobuf's JSON mapping would have it)."""
    if not value and not required:
        return b""
    if isinstance(value, str) and len(value) == 2 * size:
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass
    raise DecodeError(f"span {name} must be {2 * size} hex digits, got {value!r:.60}")


def _json_attributes(attributes: Any, wanted: frozenset[str], max_attributes: int) -> dict[str, AttributeValue]:
    if attributes is None:
        return {}
    if not isinstance(attributes, list):
        raise DecodeError(f"attributes must be a JSON array, got {type(attributes).__name__}")
    if len(attributes) > max_attributes:
        raise DecodeError(_too_many_attributes(len(attributes), max_attributes))
    picked: dict[str, AttributeValue] = {}
    for attribute in attributes:
        if not isinstance(attribute, dict):
            raise DecodeError(f"an attribute must be a JSON object with key and value, got {type(attribute).__name__}")
        key = attribute.get("key")
        if key in wanted:
            picked[key] = _json_value(attribute.get("value"))
    return picked


def _json_value(value: Any) -> AttributeValue:
    if not isinstance(value, dict):
        return ()
    text = value.get("stringValue")
    if isinstance(text, str) and text:
        return text
    array = value.get("arrayValue")
    items = array.get("values") if isinstance(array, dict) else None
    if not isinstance(items, list):
        return ()
    return tuple(item["stringValue"] for item in items if isinstance(item, dict) and isinstance(item.get("stringValue"), str) and item["stringValue"])


# --- limits ------------------------------------------------------------------------------------------


def _check_span_count(span_count: int, limits: DecodeLimits) -> None:
    if span_count > limits.max_spans_per_message:
        raise DecodeError(
            f"message holds {span_count} spans, over the {limits.max_spans_per_message}-span limit "
            "(HOTPATH_MAX_SPANS_PER_MESSAGE)"
        )


def _too_many_attributes(count: int, maximum: int) -> str:
    return f"a span has {count} attributes, over the {maximum}-attribute limit (HOTPATH_MAX_ATTRIBUTES_PER_SPAN)"


