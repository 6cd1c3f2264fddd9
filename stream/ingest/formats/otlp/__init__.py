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

This list is the allow-list of what traces can put into escalations: every other attribute (headers,
statements, user ids, payloads) is skipped unread, on both encodings. The entity ids made from
allowed values (names, namespaces, hosts, URL paths) pass through :func:`stream.redact.mask`, so a
card number or credential placed in one reaches no topic unmasked, and may not be longer than the
longest ARN AWS allows (2048 characters): a message naming a longer one is refused, as a message
with too many attributes is.

What a message may make hotpath remember is capped, since every entity named becomes state, every
caller an edge every worker holds: a span touches at most ``max_entities_per_span`` entities (the
first it names), and a message at most ``max_entities_per_message`` entities, as many learned pods
and as many caller links. The rest is dropped and counted in :attr:`TraceBatch.over_cap`, which
the worker dead-letters once per message while routing what is within the caps.

What a span touches:

* SERVER and CONSUMER spans touch their own service (``service:NAME``) and, when the resource names
  it, the workload's cloud identity (``cloud.resource_id`` when it is an ARN, else the EC2 instance
  of ``host.id`` on ``cloud.platform`` = ``aws_ec2``). The caller is the service of the parent span
  when the parent is in the same message and belongs to another service, else the service an asset
  alias gives the caller's address. A SERVER span whose caller address (first X-Forwarded-For hop,
  else the client or peer address) is globally routable counts as internet traffic.
* Any span touches the AWS resources its attributes name; region and account come from the resource
  when the attribute gives only a name. Outgoing and INTERNAL spans that name none may still name
  one by the address they call: a virtual-hosted or path-style S3 address, an SQS queue URL.
* CLIENT and PRODUCER spans without AWS resources touch their peer: ``peer.service`` as a service,
  else the host (``server.address``, ``net.peer.name`` or the URL's host) as an asset alias names it.
  A database host no asset claims becomes ``db:SYSTEM://HOST/NAMESPACE``; any other unclaimed host
  (plain HTTP, or an AWS endpoint naming no resource) is not an entity and is skipped. INTERNAL spans
  touch only AWS resources and databases. The caller of these touches is the span's own service.

Speed: protobuf is parsed once, with a lean schema that is wire-compatible with OTLP (span
attributes read as a map, whose wire layout is exactly the repeated ``KeyValue``), so unneeded
fields are skipped in C and the wanted keys are picked out by a set intersection rather than a
Python walk; values stay serialized until they are needed. What a span touches depends only on its
resource, its kind and the wanted attribute values: that is worked out once per distinct
combination and kept across messages (only the asset-alias lookups are redone per message), so per
span only counters move. Duplicate attribute keys keep the last value (OTLP requires unique keys);
a flood of one repeated key is caught by a count of the raw entries, made only when the message
holds more of them than its spans may carry. ``otlp_json`` is walked straight from orjson's dicts
(protobuf's ``json_format`` is slow and would read the hex ids as base64).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any, Literal
from urllib.parse import SplitResult, urlsplit

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError as ProtobufDecodeError
from google.protobuf.message import Message

from stream.entities.context import MAX_CALLERS_PER_ENTITY
from stream.entities.resolve import (
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
from stream.ingest.formats import jsonsafe
from stream.ingest.formats.eventtime import check_times
from stream.ingest.formats.limits import DecodeLimits
from stream.models import DecodeError, Touch, TraceBatch
from stream.redact import mask

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
_CALLER_KEY_SET = frozenset(_CALLER_KEYS)
_HOST_KEYS = ("server.address", "net.peer.name")
_URL_KEYS = ("url.full", "http.url")
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

_MAX_ADDRESS_LENGTH = 64  # the longest IPv6 text with a zone; longer strings are not addresses
MAX_ENTITY_ID_LENGTH = 2048  # the longest ARN AWS allows
_S3_PATH_STYLE_HOST = re.compile(r"^s3(?:[.\-](?:dualstack\.)?[a-z0-9\-]+)?\.amazonaws\.com$")
_QUEUE_PATH = re.compile(r"^/(?P<account>\d{12})/(?P<name>[^/?#]+)$")

AttributeValue = str | tuple[str, ...]
Found = tuple[tuple[str, Any], ...]
# the message's plans for the span's resource and kind, found attribute values (callers aside), found caller
# attribute values, end time (ns), error, trace id, span id, parent span id
SpanRow = tuple["_Plans", Found, Found, int, bool, bytes, bytes, bytes]


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
    if isinstance(value, bytearray | memoryview):
        value = bytes(value)
    elif not isinstance(value, bytes):
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
    batch = fold.batch()
    bounds = limits.time_bounds()
    for touch in batch.touches:
        check_times(touch, bounds)
    return batch


# --- the fold shared by both encodings -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Resource:
    """What one resource contributes to each of its spans, the same in every message it sends."""

    service: str | None
    identity: str | None
    region: str | None
    account: str | None
    pod: str | None


def _resource(attributes: dict[str, Any]) -> _Resource:
    name = _text(attributes.get("service.name"))
    if not name or name.startswith("unknown_service"):
        name = next((_text(attributes.get(key)) for key in _SERVICE_NAME_FALLBACKS if _text(attributes.get(key))), None)
    pod = _text(attributes.get("k8s.pod.name"))
    if not name and pod:
        name = deployment_of_pod(pod)
    region, account = _text(attributes.get("cloud.region")), _text(attributes.get("cloud.account.id"))
    identity = _workload_identity(attributes, region, account)
    return _Resource(
        service=_entity_id(service_entity(name)) if name else None,
        identity=_entity_id(identity) if identity else None,
        region=region, account=account, pod=_entity_id(pod) if pod else None,
    )


@dataclass(frozen=True, slots=True)
class _Template:
    """What spans of one resource and kind with the same wanted attribute values touch, aliases aside.

    It depends on nothing but its key, so it is kept across messages (with traces partitioned by
    trace id a message holds a few spans, and planning afresh each time would dominate); the asset
    aliases, which may change between messages, are consulted when a message uses the template.
    Who called an inbound span is kept apart (:class:`_Caller`): client addresses change from request
    to request and would make nearly every template new.
    """

    inbound: bool
    server: bool  # a SERVER span: internet traffic when its caller's address is public
    fixed: tuple[str, ...]  # entities named outright
    host: str | None  # a peer or database host an asset alias may claim
    unclaimed: str | None  # the database id used when no alias claims ``host``
    dropped: int  # entities the span names beyond the per-span cap


@dataclass(frozen=True, slots=True)
class _Caller:
    """What an inbound span's caller attributes say: a public address, and addresses an alias may name."""

    public: bool
    addresses: tuple[str, ...]


TemplateKey = tuple[_Resource, int, Found, int]
_TEMPLATES: dict[TemplateKey, _Template] = {}
_CALLERS: dict[Found, _Caller] = {}
_MAX_TEMPLATES = 20_000  # then a cache starts over: bounded memory whatever the input
_MAX_CACHED_VALUE_LENGTH = 256  # values longer than this (full URLs with queries, say) are rarely seen twice


def _keep(cache: dict, key: Any, value: Any, found: Found) -> None:
    if all(len(raw) <= _MAX_CACHED_VALUE_LENGTH for _, raw in found):
        if len(cache) >= _MAX_TEMPLATES:
            cache.clear()
        cache[key] = value


def _template(resource: _Resource, kind: int, found: Found, decode_value: Callable[[Any], AttributeValue],
              max_entities: int) -> _Template:
    key = (resource, kind, found, max_entities)
    template = _TEMPLATES.get(key)
    if template is None:
        template = _plan(resource, kind, {_CANONICAL[name]: decode_value(value) for name, value in found}, max_entities)
        _keep(_TEMPLATES, key, template, found)
    return template


def _caller(found: Found, decode_value: Callable[[Any], AttributeValue]) -> _Caller:
    """An inbound span's caller attributes, read once per distinct combination."""
    caller = _CALLERS.get(found)
    if caller is None:
        values = {_CANONICAL[name]: decode_value(value) for name, value in found}
        address = _caller_address(values)
        addresses = tuple(address for address in (_text(values.get("client.address")),
                                                  _text(values.get("network.peer.address"))) if address)
        caller = _Caller(len(address) <= _MAX_ADDRESS_LENGTH and is_public_address(address), addresses)
        _keep(_CALLERS, found, caller, found)
    return caller


def _plan(resource: _Resource, kind: int, values: dict[str, AttributeValue], max_entities: int) -> _Template:
    """The cold path: work out what a new combination of resource, kind and attribute values touches.

    At most ``max_entities`` are kept, the first named; only those are built, so a span naming a
    hundred thousand tables costs no more than one naming ``max_entities``.
    """
    fixed, dropped = _aws_targets(values, resource, max_entities)
    host = unclaimed = None
    inbound = kind in _INBOUND
    if inbound:
        own = [entity for entity in (resource.service, resource.identity) if entity]
        fixed = own + [target for target in fixed if target not in own]
    elif not fixed and not _is_aws_call(values):
        fixed, host, unclaimed = _peer(values, outbound=kind in _OUTBOUND)
    entities = tuple(dict.fromkeys(map(_entity_id, fixed)))
    dropped += max(0, len(entities) - max_entities)
    return _Template(inbound, kind == SPAN_KIND_SERVER, entities[:max_entities], host,
                     _entity_id(unclaimed) if unclaimed else None, dropped)


def _entity_id(text: str) -> str:
    """An entity id made from attribute values, as it may leave the decoder: bounded and masked."""
    if len(text) > MAX_ENTITY_ID_LENGTH:
        raise DecodeError(f"a span names an entity of {len(text)} characters, over the {MAX_ENTITY_ID_LENGTH}-character limit")
    return mask(text)


def _peer(values: dict[str, AttributeValue], *, outbound: bool) -> tuple[list[str], str | None, str | None]:
    """A peer named outright (``peer.service``), or the host an alias may claim and the id if none does."""
    is_database = "db.system" in values or "db.namespace" in values
    if not outbound and not is_database:
        return [], None, None
    peer_service = _text(values.get("peer.service"))
    if peer_service and outbound:
        return [service_entity(peer_service)], None, None
    host = _target_host(values)
    if not host:
        return [], None, None
    if not is_database:
        return [], host, None
    system = _text(values.get("db.system")) or "unknown"
    namespace = _text(values.get("db.namespace"))
    return [], host, f"db:{system}://{host}" + (f"/{namespace}" if namespace else "")


_HOST_NEEDS_URL: dict[Any, bool] = {}


def _url_unneeded(hits: Iterable[str], value_of: Callable[[str], Any], decode_value: Callable[[Any], AttributeValue]) -> bool:
    """True when the span's URL cannot change what it touches, so its (per-request) value is left out.

    A URL adds to a plain host only for AWS endpoints (path-style S3, SQS queue URLs); a span that
    names a host outright (``server.address``, ``net.peer.name``) outside ``amazonaws.com`` is
    planned the same whatever its URL path, and keeping the path would make each request a new plan.
    """
    hosts = [value_of(key) for key in _HOST_KEYS if key in hits]
    if not hosts:
        return False
    for raw in hosts:
        needed = _HOST_NEEDS_URL.get(raw)
        if needed is None:
            host = _text(decode_value(raw))
            needed = host is None or host.lower().endswith(".amazonaws.com")
            _keep(_HOST_NEEDS_URL, raw, needed, (("", raw),))
        if needed:
            return False
    return True


class _Tally:
    """One entity's touch: what the plans naming it add up to, and the first trace ids seen."""

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
    """A template made concrete for one message: the tallies its spans move, and running counts.

    The counts are kept per plan, not per tally, so a span costs the same however many entities it
    touches; :meth:`_Fold.batch` adds them to the tallies once. ``dropped`` is how many entities each
    of its spans names beyond the caps.
    """

    __slots__ = ("tallies", "service", "server", "callers", "spans", "errors", "internet", "first", "last",
                 "sampling", "dropped")

    def __init__(self, tallies: tuple[_Tally, ...], service: str | None, server: bool, dropped: int):
        self.tallies = tallies
        self.dropped = dropped
        self.service = service
        self.server = server
        self.callers: dict[str, None] = {}
        self.spans = self.errors = self.internet = 0
        self.first = 1 << 64
        self.last = -1
        self.sampling = bool(tallies)  # some tally still wants trace ids


class _Plans(dict[Found, _Plan]):
    """One message's plans for one resource and span kind, by found attribute values."""

    __slots__ = ("fold", "resource", "kind")

    def __init__(self, fold: _Fold, resource: _Resource, kind: int):
        super().__init__()
        self.fold, self.resource, self.kind = fold, resource, kind

    def __missing__(self, found: Found) -> _Plan:
        template = _template(self.resource, self.kind, found, self.fold.decode_value, self.fold.max_entities_per_span)
        plan = self[found] = self.fold.concrete_plan(template, self.resource)
        return plan


class _PlansByKind(dict[int, _Plans]):
    """One message's plans for one resource, by span kind."""

    __slots__ = ("fold", "resource")

    def __init__(self, fold: _Fold, resource: _Resource):
        super().__init__()
        self.fold, self.resource = fold, resource

    def __missing__(self, kind: int) -> _Plans:
        plans = self[kind] = _Plans(self.fold, self.resource, kind)
        return plans


class _Fold:
    """One message's spans folded into touches; ``decode_value`` turns a found attribute value into text.

    What a message may name is capped, so its memory and work downstream are bounded whatever it
    holds: entities per span, and per message the entities touched, the pods learned and the caller
    links (caller service -> entity), each at ``max_entities_per_message``. What is over a cap is
    dropped and counted; the batch says so (``over_cap``) for one dead letter per message.
    """

    def __init__(self, resolver: EntityResolver, limits: DecodeLimits, decode_value: Callable[[Any], AttributeValue]):
        self.resolver = resolver
        self.decode_value = decode_value
        self.max_trace_ids = limits.max_trace_ids
        self.max_entities_per_span = limits.max_entities_per_span
        self.max_entities_per_message = limits.max_entities_per_message
        self.dropped_pods = 0
        self.tallies: dict[str, _Tally] = {}
        self.plans: list[_Plan] = []
        self.pods: dict[str, str] = {}
        self.service_of_span: dict[bytes, str | None] = {}
        self.inbound: list[tuple[bytes, _Plan, _Caller | None]] = []  # (parent span id, plan, caller)

    def resource_plans(self, resource: _Resource) -> _PlansByKind:
        """Plans for the spans of one resource of this message; learns the resource's pod on the way."""
        if resource.pod and resource.service:
            if len(self.pods) < self.max_entities_per_message or resource.pod in self.pods:
                self.pods[resource.pod] = resource.service
            else:
                self.dropped_pods += 1
        return _PlansByKind(self, resource)

    def fold(self, spans: Iterable[SpanRow]) -> None:
        """The hot loop: each span moves the counters of its plan, nothing more.

        ``span_id`` is given only when callers may be looked up (several resources in the message);
        ``callers`` and ``parent_id`` only for inbound spans, whose callers are worked out in :meth:`batch`.
        """
        service_of_span = self.service_of_span
        inbound = self.inbound
        sample_size = self.max_trace_ids
        decode_value = self.decode_value
        callers_seen = _CALLERS
        for plans, found, callers, end_ns, error, trace_id, span_id, parent_id in spans:
            plan = plans[found]
            plan.spans += 1
            if error:
                plan.errors += 1
            if end_ns < plan.first:
                plan.first = end_ns
            if end_ns > plan.last:
                plan.last = end_ns
            if span_id:
                service_of_span[span_id] = plan.service
            if callers:
                caller = callers_seen.get(callers) or _caller(callers, decode_value)
                if caller.public and plan.server:
                    plan.internet += 1
                inbound.append((parent_id, plan, caller))
            elif parent_id:
                inbound.append((parent_id, plan, None))
            if plan.sampling:
                plan.sampling = False
                for tally in plan.tallies:
                    sample = tally.trace_ids
                    if len(sample) < sample_size:
                        if trace_id not in sample:
                            sample.append(trace_id)
                        plan.sampling = plan.sampling or len(sample) < sample_size

    def batch(self) -> TraceBatch:
        self._add_callers()
        dropped = self.dropped_pods
        for plan in self.plans:
            dropped += plan.dropped * plan.spans
            for tally in plan.tallies:
                tally.spans += plan.spans
                tally.errors += plan.errors
                tally.internet += plan.internet
                tally.first = min(tally.first, plan.first)
                tally.last = max(tally.last, plan.last)
                tally.callers.update(plan.callers)
        touches, links = [], self.max_entities_per_message
        for entity, tally in self.tallies.items():
            callers = list(islice(tally.callers, min(links, MAX_CALLERS_PER_ENTITY)))
            links -= len(callers)
            dropped += len(tally.callers) - len(callers)
            touches.append(Touch(
                entity=entity, services=callers, spans=tally.spans, errors=tally.errors,
                internet_spans=tally.internet, first_seen=tally.first / _NS_PER_S, last_seen=tally.last / _NS_PER_S,
                trace_ids=[trace_id.hex() for trace_id in tally.trace_ids],
            ))
        last = max((plan.last for plan in self.plans), default=None)
        return TraceBatch(touches=touches, pods=self.pods,
                          over_cap=self._over_cap_reason(dropped) if dropped else None,
                          last_seen=None if last is None else last / _NS_PER_S)

    def _over_cap_reason(self, dropped: int) -> str:
        return (f"message names more entities than hotpath keeps ({self.max_entities_per_span} per span, "
                f"HOTPATH_MAX_ENTITIES_PER_SPAN; {self.max_entities_per_message} entities, pods and caller links "
                f"per message, HOTPATH_MAX_ENTITIES_PER_MESSAGE): {dropped} dropped, the rest routed")

    def _add_callers(self) -> None:
        """Inbound spans: the caller is the parent's service when the parent is in this message and
        belongs to another service, else the service an asset alias gives the caller's address."""
        by_alias: dict[tuple[tuple[str, ...], str | None], str | None] = {}
        for parent_id, plan, caller in self.inbound:
            service = self.service_of_span.get(parent_id) if parent_id else None
            if service is not None and service != plan.service:
                plan.callers[service] = None
            elif caller is not None and caller.addresses:
                key = (caller.addresses, plan.service)
                if key not in by_alias:
                    by_alias[key] = self._caller_by_alias(caller.addresses, plan.service)
                if by_alias[key] is not None:
                    plan.callers[by_alias[key]] = None

    def concrete_plan(self, template: _Template, resource: _Resource) -> _Plan:
        """The template with this message's tallies and the asset aliases as they are now."""
        entities = template.fixed
        if template.host is not None:
            claimed = self.resolver.resolve(template.host) or template.unclaimed
            entities = (*entities, claimed) if claimed else entities
        tallies = tuple(tally for tally in map(self._tally, entities) if tally is not None)
        plan = _Plan(tallies, resource.service, template.server, template.dropped + len(entities) - len(tallies))
        if not template.inbound and resource.service:
            plan.callers[resource.service] = None
        self.plans.append(plan)
        return plan

    def _caller_by_alias(self, addresses: tuple[str, ...], own_service: str | None) -> str | None:
        for address in addresses:
            entity = self.resolver.resolve(address)
            if entity is not None and is_service(entity) and entity != own_service:
                return entity
        return None

    def _tally(self, entity: str) -> _Tally | None:
        """The entity's tally; None once the message has named ``max_entities_per_message`` others."""
        tally = self.tallies.get(entity)
        if tally is None and len(self.tallies) < self.max_entities_per_message:
            tally = self.tallies[entity] = _Tally()
        return tally


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


def _aws_targets(values: dict[str, AttributeValue], resource: _Resource, max_tables: int) -> tuple[list[str], int]:
    """The AWS resources a span names, and how many table names beyond ``max_tables`` were left out."""
    targets = []
    bucket = _text(values.get("aws.s3.bucket"))
    if bucket:
        targets.append(s3_bucket_arn(bucket))
    tables = _texts(values.get("aws.dynamodb.table_names"))
    for table in tables[:max_tables]:
        targets.append(dynamodb_table_arn(table, resource.region, resource.account))
    function = _text(values.get("aws.lambda.invoked_arn"))
    if function and function.startswith("arn:"):
        targets.append(_unqualified_lambda_arn(function))
    queue_url = _text(values.get("aws.sqs.queue.url"))
    queue = _queue_arn(queue_url, resource.region) if queue_url else None
    if queue:
        targets.append(queue)
    for key in ("aws.sns.topic.arn", "aws.secretsmanager.secret.arn"):
        arn = _text(values.get(key))
        if arn and arn.startswith("arn:"):
            targets.append(arn)
    if not targets:
        targets.extend(_aws_endpoint_targets(values))
    return targets, max(0, len(tables) - max_tables)


def _aws_endpoint_targets(values: dict[str, AttributeValue]) -> list[str]:
    """Resources named only by the address called: S3 virtual-hosted or path-style, SQS queue URLs."""
    host = _target_host(values)
    if host is None:
        return []
    bucket = bucket_from_host(host)
    if bucket:
        return [s3_bucket_arn(bucket)]
    url = _text(values.get("url.full"))
    parts = _url_parts(url) if url else None
    if url is None or parts is None:
        return []
    if _S3_PATH_STYLE_HOST.match(host):
        path_bucket = parts.path.lstrip("/").split("/", 1)[0]
        return [s3_bucket_arn(path_bucket)] if path_bucket else []
    queue = sqs_queue_arn(url) if host.endswith(".amazonaws.com") else None
    return [queue] if queue else []


def _queue_arn(url: str, region: str | None) -> str | None:
    """An SQS queue URL's ARN; local endpoints (``http://host:port/ACCOUNT/NAME``) take the resource's region."""
    arn = sqs_queue_arn(url)
    if arn:
        return arn
    parts = _url_parts(url)
    match = _QUEUE_PATH.match(parts.path) if parts else None
    return aws_arn("sqs", region, match.group("account"), match.group("name")) if match else None


def _target_host(values: dict[str, AttributeValue]) -> str | None:
    host = _text(values.get("server.address"))
    if host is None:
        url = _text(values.get("url.full"))
        parts = _url_parts(url) if url else None
        host = parts.hostname if parts else None
    return host.lower() if host else None


def _url_parts(url: str) -> SplitResult | None:
    """A URL split into its parts, or None when it is not one (a bad IPv6 host, say)."""
    try:
        parts = urlsplit(url)
        parts.hostname  # noqa: B018 - parsed lazily, so an invalid host only raises here
    except ValueError:
        return None
    return parts


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
    per-span check on distinct keys. Every span attribute takes two bytes or more and starts with one
    tag byte on the wire; only when the message is long enough, and that byte frequent enough, to
    hold more entries than ``span_count`` spans may legitimately carry is it parsed a second (cheap)
    time to count every entry, so ordinary messages never pay.
    """
    allowed = span_count * max_attributes
    if len(value) <= 2 * allowed or value.count(_SPAN_ATTRIBUTE_TAG) <= allowed:  # an entry takes 2 bytes or more
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
    track_span_ids = len(resource_spans) > 1
    error_status = _is_error_status
    wanted_by_kind = _WANTED_BY_KIND
    for resource in resource_spans:
        attributes = resource.resource.attributes
        wanted = _RESOURCE_KEYS.intersection(attributes)
        plans_by_kind = fold.resource_plans(_resource_of(tuple(zip(wanted, map(attributes.__getitem__, wanted), strict=True))))
        for scope in resource.scope_spans:
            for span in scope.spans:
                attributes = span.attributes
                if len(attributes) > max_attributes:
                    raise DecodeError(_too_many_attributes(len(attributes), max_attributes))
                kind, end_ns, status, trace_id = _SPAN_FIELDS(span)
                if len(trace_id) != 16:
                    raise DecodeError(f"span trace id is {len(trace_id)} bytes, expected 16")
                callers: Found = ()
                parent_id = b""
                if kind in _INBOUND:
                    hits = _INBOUND_WANTED.intersection(attributes)
                    caller_keys = hits & _CALLER_KEY_SET
                    if caller_keys:
                        hits -= caller_keys
                        callers = tuple(zip(caller_keys, map(attributes.__getitem__, caller_keys), strict=True))
                    parent_id = span.parent_span_id
                else:
                    hits = wanted_by_kind.get(kind, _INTERNAL_WANTED).intersection(attributes)
                    if ("url.full" in hits or "http.url" in hits) and _url_unneeded(hits, attributes.__getitem__, _proto_value):
                        hits = hits.difference(_URL_KEYS)
                yield (
                    plans_by_kind[kind], tuple(zip(hits, map(attributes.__getitem__, hits), strict=True)), callers,
                    end_ns, error_status[status], trace_id, span.span_id if track_span_ids else b"", parent_id,
                )


_RESOURCES: dict[Found, _Resource] = {}


def _resource_of(found: Found) -> _Resource:
    """A protobuf resource's facts from its still-serialized attribute values, kept across messages."""
    resource = _RESOURCES.get(found)
    if resource is None:
        resource = _resource({key: _proto_value(value) for key, value in found})
        if len(_RESOURCES) >= _MAX_TEMPLATES:
            _RESOURCES.clear()
        _RESOURCES[found] = resource
    return resource


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
    document = jsonsafe.expect_dict(jsonsafe.loads(value, limits.max_record_bytes, limits.max_json_depth), "an OTLP/JSON trace message")
    resources = _json_list(document, "resourceSpans", "the message")
    scopes_of = [
        (resource, [_json_list(scope, "spans", "scopeSpans[]") for scope in _json_list(resource, "scopeSpans", "resourceSpans[]")])
        for resource in resources
    ]
    span_count = sum(len(spans) for _, span_lists in scopes_of for spans in span_lists)
    _check_span_count(span_count, limits)
    track_span_ids = len(resources) > 1
    max_attributes = limits.max_attributes_per_span
    for resource, span_lists in scopes_of:
        resource_object = jsonsafe.expect_dict(resource.get("resource", {}), "resourceSpans[].resource")
        plans_by_kind = fold.resource_plans(_resource(_json_attributes(resource_object.get("attributes"), _RESOURCE_KEYS, max_attributes)))
        for spans in span_lists:
            for span in spans:
                if not isinstance(span, dict):
                    raise DecodeError(f"a span must be a JSON object, got {type(span).__name__}")
                kind = _json_kind(span.get("kind", 0))
                picked = _json_attributes(span.get("attributes"), _WANTED_BY_KIND.get(kind, _INTERNAL_WANTED), max_attributes)
                callers = tuple((key, picked.pop(key)) for key in _CALLER_KEYS if key in picked)
                if ("url.full" in picked or "http.url" in picked) and _url_unneeded(picked, picked.__getitem__, _as_is):
                    for key in _URL_KEYS:
                        picked.pop(key, None)
                status = span.get("status") or {}
                error = isinstance(status, dict) and status.get("code") in (STATUS_CODE_ERROR, "STATUS_CODE_ERROR")
                yield (
                    plans_by_kind[kind], tuple(picked.items()), callers, _json_time(span.get("endTimeUnixNano")), error,
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
        if not isinstance(key, str):
            raise DecodeError(f"an attribute key must be a string, got {type(key).__name__}")
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


