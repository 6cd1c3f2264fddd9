"""What one span touches, worked out from its resource, its kind and its wanted attribute values.

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

The entity ids made from attribute values (names, namespaces, hosts, URL paths) pass through
:func:`stream.redact.mask`, so a card number or credential placed in one reaches no topic unmasked,
and may not be longer than the longest ARN AWS allows: a message naming a longer one is refused.
Everything here is pure: the same inputs give the same answer, which is what lets the decoder keep
the answers across messages.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import SplitResult, urlsplit

from stream.entities.resolve import (
    aws_arn,
    bucket_from_host,
    deployment_of_pod,
    dynamodb_table_arn,
    ec2_instance_arn,
    s3_bucket_arn,
    service_entity,
    sqs_queue_arn,
)
from stream.ingest.formats.otlp.semconv import (
    INBOUND,
    OUTBOUND,
    SERVICE_NAME_FALLBACKS,
    SPAN_KIND_SERVER,
    AttributeValue,
)
from stream.models import DecodeError
from stream.redact import mask

MAX_ENTITY_ID_LENGTH = 2048  # the longest ARN AWS allows
MAX_ADDRESS_LENGTH = 64  # the longest IPv6 text with a zone; longer strings are not addresses
_S3_PATH_STYLE_HOST = re.compile(r"^s3(?:[.\-](?:dualstack\.)?[a-z0-9\-]+)?\.amazonaws\.com$")
_QUEUE_PATH = re.compile(r"^/(?P<account>\d{12})/(?P<name>[^/?#]+)$")


class ResourceFacts(NamedTuple):
    """What one resource contributes to each of its spans, the same in every message it sends (a tuple: it is part
    of the key of each span group's targets, and a tuple hashes in C)."""

    service: str | None
    identity: str | None
    region: str | None
    account: str | None
    pod: str | None


@dataclass(frozen=True, slots=True)
class SpanTargets:
    """What spans of one resource and kind with the same wanted attribute values touch, aliases aside.

    The asset aliases, which may change between messages, are consulted when a message uses it.
    Who called an inbound span is kept apart (:class:`CallerFacts`): client addresses change from
    request to request and would make nearly every span's targets new.
    """

    inbound: bool
    server: bool  # a SERVER span: internet traffic when its caller's address is public
    fixed: tuple[str, ...]  # entities named outright
    host: str | None  # a peer or database host an asset alias may claim
    unclaimed: str | None  # the database id used when no alias claims ``host``
    dropped: int  # entities the span names beyond the per-span cap


@dataclass(frozen=True, slots=True)
class CallerFacts:
    """What an inbound span's caller attributes say: a public address, and addresses an alias may name."""

    public: bool
    addresses: tuple[str, ...]


def resource_facts(attributes: dict[str, Any]) -> ResourceFacts:
    """A resource's service, cloud identity, region, account and pod from its attributes."""
    name = text(attributes.get("service.name"))
    if not name or name.startswith("unknown_service"):
        fallbacks = (text(attributes.get(key)) for key in SERVICE_NAME_FALLBACKS)
        name = next((fallback for fallback in fallbacks if fallback), None)
    pod = text(attributes.get("k8s.pod.name"))
    if not name and pod:
        name = deployment_of_pod(pod)
    region, account = text(attributes.get("cloud.region")), text(attributes.get("cloud.account.id"))
    identity = _workload_identity(attributes, region, account)
    return ResourceFacts(
        service=entity_id(service_entity(name)) if name else None,
        identity=entity_id(identity) if identity else None,
        region=region, account=account, pod=entity_id(pod) if pod else None,
    )


def span_targets(resource: ResourceFacts, kind: int, values: dict[str, AttributeValue],
                 max_entities: int) -> SpanTargets:
    """The cold path: work out what a new combination of resource, kind and attribute values touches.

    At most ``max_entities`` are kept, the first named; only those are built, so a span naming a
    hundred thousand tables costs no more than one naming ``max_entities``.
    """
    fixed, dropped = _aws_targets(values, resource, max_entities)
    host = unclaimed = None
    inbound = kind in INBOUND
    if inbound:
        own = [entity for entity in (resource.service, resource.identity) if entity]
        fixed = own + [target for target in fixed if target not in own]
    elif not fixed and not _is_aws_call(values):
        fixed, host, unclaimed = _peer(values, outbound=kind in OUTBOUND)
    entities = tuple(dict.fromkeys(map(entity_id, fixed)))
    dropped += max(0, len(entities) - max_entities)
    return SpanTargets(inbound, kind == SPAN_KIND_SERVER, entities[:max_entities], host,
                       entity_id(unclaimed) if unclaimed else None, dropped)


def caller_facts(values: dict[str, AttributeValue], is_public: Callable[[str], bool]) -> CallerFacts:
    """Whether an inbound span's caller address is public (:func:`public_caller`), and the addresses an alias may
    name."""
    address = _caller_address(values)
    addresses = tuple(address for address in (text(values.get("client.address")),
                                              text(values.get("network.peer.address"))) if address)
    return CallerFacts(public_caller(address, is_public), addresses)


def public_caller(address: str, is_public: Callable[[str], bool]) -> bool:
    """Whether a caller's address is public, as ``is_public`` says of what may be an address (not too long)."""
    return len(address) <= MAX_ADDRESS_LENGTH and is_public(address)


def host_needs_url(host: str | None) -> bool:
    """Whether a span calling ``host`` may touch something only its URL names (AWS endpoints do)."""
    return host is None or host.lower().endswith(".amazonaws.com")


def entity_id(value: str) -> str:
    """An entity id made from attribute values, as it may leave the decoder: bounded and masked."""
    if len(value) > MAX_ENTITY_ID_LENGTH:
        raise DecodeError(
            f"a span names an entity of {len(value)} characters, over the {MAX_ENTITY_ID_LENGTH}-character limit"
        )
    return mask(value)


def text(value: Any) -> str | None:
    """A single string attribute value; arrays and other types are not one."""
    return value if isinstance(value, str) and value else None


def _texts(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,) if value else ()
    return value if isinstance(value, tuple) else ()


def _peer(values: dict[str, AttributeValue], *, outbound: bool) -> tuple[list[str], str | None, str | None]:
    """A peer named outright (``peer.service``), or the host an alias may claim and the id if none does."""
    is_database = "db.system" in values or "db.namespace" in values
    if not outbound and not is_database:
        return [], None, None
    peer_service = text(values.get("peer.service"))
    if peer_service and outbound:
        return [service_entity(peer_service)], None, None
    host = _target_host(values)
    if not host:
        return [], None, None
    if not is_database:
        return [], host, None
    system = text(values.get("db.system")) or "unknown"
    namespace = text(values.get("db.namespace"))
    return [], host, f"db:{system}://{host}" + (f"/{namespace}" if namespace else "")


def _workload_identity(attributes: dict[str, Any], region: str | None, account: str | None) -> str | None:
    resource_id = text(attributes.get("cloud.resource_id"))
    if resource_id and resource_id.startswith("arn:"):
        return _unqualified_lambda_arn(resource_id)
    host_id = text(attributes.get("host.id"))
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


def _aws_targets(values: dict[str, AttributeValue], resource: ResourceFacts, max_tables: int) -> tuple[list[str], int]:
    """The AWS resources a span names, and how many table names beyond ``max_tables`` were left out."""
    targets = []
    bucket = text(values.get("aws.s3.bucket"))
    if bucket:
        targets.append(s3_bucket_arn(bucket))
    tables = _texts(values.get("aws.dynamodb.table_names"))
    for table in tables[:max_tables]:
        targets.append(dynamodb_table_arn(table, resource.region, resource.account))
    function = text(values.get("aws.lambda.invoked_arn"))
    if function and function.startswith("arn:"):
        targets.append(_unqualified_lambda_arn(function))
    queue_url = text(values.get("aws.sqs.queue.url"))
    queue = _queue_arn(queue_url, resource.region) if queue_url else None
    if queue:
        targets.append(queue)
    for key in ("aws.sns.topic.arn", "aws.secretsmanager.secret.arn"):
        arn = text(values.get(key))
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
    url = text(values.get("url.full"))
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
    host = text(values.get("server.address"))
    if host is None:
        url = text(values.get("url.full"))
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
    return text(values.get("client.address")) or text(values.get("network.peer.address")) or ""


def _without_port(address: str) -> str:
    if address.startswith("["):
        return address[1:].split("]", 1)[0]
    host, separator, port = address.rpartition(":")
    return host if separator and host.count(".") == 3 and port.isdigit() else address
