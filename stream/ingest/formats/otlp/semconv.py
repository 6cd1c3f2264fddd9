"""The OpenTelemetry semantic conventions hotpath reads: span kinds, status codes and attribute keys.

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
statements, user ids, payloads) is skipped unread, on both encodings.
"""

from __future__ import annotations

from typing import Any

SPAN_KIND_INTERNAL, SPAN_KIND_SERVER, SPAN_KIND_CLIENT, SPAN_KIND_PRODUCER, SPAN_KIND_CONSUMER = 1, 2, 3, 4, 5
KIND_NAMES = {
    "SPAN_KIND_UNSPECIFIED": 0, "SPAN_KIND_INTERNAL": 1, "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3, "SPAN_KIND_PRODUCER": 4, "SPAN_KIND_CONSUMER": 5,
}
INBOUND = frozenset({SPAN_KIND_SERVER, SPAN_KIND_CONSUMER})
OUTBOUND = frozenset({SPAN_KIND_CLIENT, SPAN_KIND_PRODUCER})
STATUS_CODE_ERROR = 2

# Span attributes, old and new names mapped to one canonical name each.
AWS_KEYS = {
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
TARGET_KEYS = {
    "server.address": "server.address",
    "net.peer.name": "server.address",
    "url.full": "url.full",
    "http.url": "url.full",
}
DB_KEYS = {
    "db.system": "db.system",
    "db.system.name": "db.system",
    "db.name": "db.namespace",
    "db.namespace": "db.namespace",
}
PEER_SERVICE_KEYS = {"peer.service": "peer.service", "service.peer.name": "peer.service"}
CALLER_KEYS = {
    "http.request.header.x-forwarded-for": "x-forwarded-for",
    "client.address": "client.address",
    "http.client_ip": "client.address",
    "network.peer.address": "network.peer.address",
    "net.sock.peer.addr": "network.peer.address",
}
CALLER_KEY_SET = frozenset(CALLER_KEYS)
HOST_KEYS = ("server.address", "net.peer.name")
URL_KEYS = ("url.full", "http.url")
CANONICAL = {**AWS_KEYS, **TARGET_KEYS, **DB_KEYS, **PEER_SERVICE_KEYS, **CALLER_KEYS}

# Which attribute keys matter depends only on the span kind.
INBOUND_WANTED = frozenset({**AWS_KEYS, **CALLER_KEYS})
OUTBOUND_WANTED = frozenset({**AWS_KEYS, **TARGET_KEYS, **DB_KEYS, **PEER_SERVICE_KEYS})
INTERNAL_WANTED = frozenset({**AWS_KEYS, **TARGET_KEYS, **DB_KEYS})
WANTED_BY_KIND: dict[int, frozenset[str]] = {
    SPAN_KIND_SERVER: INBOUND_WANTED, SPAN_KIND_CONSUMER: INBOUND_WANTED,
    SPAN_KIND_CLIENT: OUTBOUND_WANTED, SPAN_KIND_PRODUCER: OUTBOUND_WANTED,
}

RESOURCE_KEYS = frozenset({
    "service.name", "faas.name", "k8s.deployment.name", "k8s.statefulset.name", "k8s.daemonset.name",
    "k8s.pod.name", "cloud.region", "cloud.account.id", "cloud.resource_id", "cloud.platform", "host.id",
})
SERVICE_NAME_FALLBACKS = ("faas.name", "k8s.deployment.name", "k8s.statefulset.name", "k8s.daemonset.name")

AttributeValue = str | tuple[str, ...]
# Wanted attributes of one span or resource as its walk found them: (key, value still in the walk's form)
Found = tuple[tuple[str, Any], ...]
