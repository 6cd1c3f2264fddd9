"""The Faust app's connection to the brokers: its URL list, credentials and durability.

Kept with the worker because only the Faust app reads them; the clients of every other command are
configured in :mod:`stream.kafka.clients`, from the same settings.
"""

from __future__ import annotations

from typing import Any

from stream.kafka.clients import ssl_context, tokens_for
from stream.settings import Settings
from stream.worker.faust_private import SCHEME


def faust_broker_kwargs(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``faust.App``: the broker URL list (with the idempotent producer's transport)
    and credentials, if any."""
    from faust import OAuthCredentials, SASLCredentials, SSLCredentials

    hosts = [host.strip() for host in settings.bootstrap_servers.split(",") if host.strip()]
    kwargs: dict[str, Any] = {"broker": ";".join(f"{SCHEME}://{host}" for host in hosts)}
    protocol = settings.security_protocol
    context = ssl_context(settings) if protocol in ("SSL", "SASL_SSL") else None
    if protocol.startswith("SASL") and settings.sasl_mechanism == "OAUTHBEARER":
        kwargs["broker_credentials"] = OAuthCredentials(
            oauth_cb=tokens_for(settings).aiokafka_provider(), ssl_context=context
        )
    elif protocol.startswith("SASL"):
        password = settings.sasl_password.get_secret_value() if settings.sasl_password else None
        kwargs["broker_credentials"] = SASLCredentials(
            username=settings.sasl_username,
            password=password,
            mechanism=settings.sasl_mechanism,
            ssl_context=context,
        )
    elif context is not None:
        kwargs["broker_credentials"] = SSLCredentials(context)
    return kwargs


def faust_durability_kwargs(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``faust.App``: copies of the topics it creates (changelogs) and the producer's
    acknowledgement and compression (idempotence comes with the transport, see stream.worker.faust_private)."""
    return {
        "topic_replication_factor": settings.replication_factor,
        "producer_acks": -1,
        "producer_compression_type": None if settings.compression == "none" else settings.compression,
    }
