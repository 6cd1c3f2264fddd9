"""Kafka clients for both sides of hotpath, built from the one ``Settings``.

confluent-kafka (producers in tests, demo, connectors, admin) and Faust/aiokafka (the worker) must
reach the same cluster with the same credentials, so both configurations come from here. Secrets
are only ever handed to the client libraries, never logged or put into a repr. OAUTHBEARER tokens
(Amazon MSK IAM among them) come from ``stream.kafka.oauth``.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

from stream.kafka.oauth import tokens_for
from stream.settings import Settings

# Faust (aiokafka) hashes keys with murmur2; confluent-kafka's default is CRC32. Keyed records written
# by confluent-kafka must land on the partition Faust would pick, or per-entity state splits.
# Every record is acknowledged by all in-sync replicas (at least HOTPATH_MIN_INSYNC_REPLICAS) and a retry is
# de-duplicated by the broker.
CO_PARTITIONED_PRODUCER: dict[str, Any] = {
    "partitioner": "murmur2_random",
    "linger.ms": 5,
    "acks": "all",
    "enable.idempotence": True,
}

# librdkafka logs (connection refused, retries) go to Python logging instead of raw stderr lines, so a
# missing broker surfaces as one clear message from the caller; the NullHandler stops Python's
# last-resort handler from printing them when the application has not configured logging.
LIBRDKAFKA_LOG = logging.getLogger("hotpath.librdkafka")
LIBRDKAFKA_LOG.addHandler(logging.NullHandler())

# A crashed worker's or deliver process's partitions move to the rest of its group (and their unfinished
# records are processed again) when its group session expires: 10 s instead of librdkafka's 45 s and
# Faust's 60 s, so a SIGKILLed or partitioned-off member stalls its partitions for seconds, not a minute.
GROUP_SESSION_TIMEOUT_S = 10.0


def confluent_config(settings: Settings) -> dict[str, Any]:
    """librdkafka connection properties (no client-role settings)."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "security.protocol": settings.security_protocol,
    }
    if settings.sasl_mechanism:
        config["sasl.mechanism"] = settings.sasl_mechanism
    if settings.sasl_mechanism == "OAUTHBEARER":
        config["oauth_cb"] = tokens_for(settings).confluent_callback
    else:
        if settings.sasl_username is not None:
            config["sasl.username"] = settings.sasl_username
        if settings.sasl_password is not None:
            config["sasl.password"] = settings.sasl_password.get_secret_value()
    for key, path in (
        ("ssl.ca.location", settings.ssl_ca_file),
        ("ssl.certificate.location", settings.ssl_cert_file),
        ("ssl.key.location", settings.ssl_key_file),
    ):
        if path is not None:
            config[key] = str(path)
    return config


def producer(settings: Settings, **overrides: Any):
    """A confluent-kafka Producer that partitions keys like Faust, never duplicates on retry and compresses
    with ``HOTPATH_COMPRESSION``.

    Overrides use librdkafka names with ``_`` for ``.`` (``linger_ms=0``) or a literal dict key.
    """
    from confluent_kafka import Producer

    return Producer(producer_config(settings, **overrides))


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """The configuration :func:`producer` hands to librdkafka."""
    compression = {"compression.type": settings.compression}
    return {**_client_config(settings), **CO_PARTITIONED_PRODUCER, **compression, **_dotted(overrides)}


def consumer(settings: Settings, group_id: str, **overrides: Any):
    """A confluent-kafka Consumer in ``group_id`` reading from the earliest offset when it has none."""
    from confluent_kafka import Consumer

    defaults = {"group.id": group_id, "auto.offset.reset": "earliest", "enable.partition.eof": False}
    return Consumer({**_client_config(settings), **defaults, **_dotted(overrides)})


def admin(settings: Settings, **overrides: Any):
    """A confluent-kafka AdminClient for topic management."""
    from confluent_kafka.admin import AdminClient

    return AdminClient({**_client_config(settings), **_dotted(overrides)})


def _client_config(settings: Settings) -> dict[str, Any]:
    return {**confluent_config(settings), "logger": LIBRDKAFKA_LOG}


def _dotted(overrides: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments cannot contain dots: ``linger_ms`` means ``linger.ms``.

    Python-side options (``error_cb``, ``on_delivery``, ``on_commit``, ``logger``) keep their names.
    """
    return {
        key if key.endswith("_cb") or key.startswith("on_") or key == "logger" else key.replace("_", "."): value
        for key, value in overrides.items()
    }


def topic_durability_config(settings: Settings) -> dict[str, str]:
    """Topic configs every topic hotpath creates carries, besides its replication factor."""
    return {"min.insync.replicas": str(settings.min_insync_replicas)}


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """A client TLS context trusting the configured CA (or the system store) with an optional client cert."""
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=str(settings.ssl_ca_file) if settings.ssl_ca_file else None
    )
    if settings.ssl_cert_file is not None:
        context.load_cert_chain(
            str(settings.ssl_cert_file), str(settings.ssl_key_file) if settings.ssl_key_file else None
        )
    return context
