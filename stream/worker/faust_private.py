"""Every use of Faust's or aiokafka's private parts, each saying why no public API serves.

Faust's aiokafka transport with an idempotent producer, registered as the ``hotpath-kafka://`` broker scheme.

The worker's producer writes entity events, escalations and the changelog that holds all correlation
state, so a retried send must never write a record twice. faust-streaming turns on aiokafka's
``enable_idempotence`` only inside exactly-once transactions and offers no setting for it otherwise;
its transport registry (the broker URL's scheme names the transport class) is the way to plug in one
whose producer always asks for it. Importing this module registers the scheme.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers.aiokafka import Producer, Transport

SCHEME = "hotpath-kafka"
# What aiokafka needs so that an acknowledged record is on every in-sync replica and a retry is de-duplicated
# by the broker (idempotence requires acks=all).
IDEMPOTENT = {"acks": "all", "enable_idempotence": True}


class IdempotentProducer(Producer):
    """Faust's producer, always configured acks=all with idempotence."""

    def _settings_extra(self) -> Mapping[str, Any]:
        # faust's own hook for producer options beyond its settings (it sets these two for transactions)
        return {**super()._settings_extra(), **IDEMPOTENT}


class IdempotentTransport(Transport):
    Producer = IdempotentProducer


TRANSPORTS[SCHEME] = f"{__name__}:{IdempotentTransport.__name__}"


def shorten_fetch_wait(app: Any, wait_ms: int) -> None:
    """Make the worker's aiokafka consumer answer a fetch after ``wait_ms`` when there is nothing to read.

    faust-streaming builds that consumer with ``fetch_max_wait_ms=1500`` written into its driver and no
    setting to change it, so a tick or a lone record would wait up to 1.5 s at each fetch; aiokafka
    reads the value from its fetcher at each request, which is the only place left to set it.
    """
    fetcher = getattr(getattr(app.consumer._thread, "_consumer", None), "_fetcher", None)
    if fetcher is not None:
        fetcher._fetch_max_wait_ms = wait_ms
