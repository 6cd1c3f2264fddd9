"""Every use of Faust's or aiokafka's private parts, each saying why no public API serves.

Faust's aiokafka transport with an idempotent producer whose flush waits for the broker and a consumer that
never commits past a record it did not process, registered as the ``hotpath-kafka://`` broker scheme.

The worker's producer writes entity events, escalations and the changelog that holds all correlation
state, so a retried send must never write a record twice. faust-streaming turns on aiokafka's
``enable_idempotence`` only inside exactly-once transactions and offers no setting for it otherwise;
its transport registry (the broker URL's scheme names the transport class) is the way to plug in one
whose producer always asks for it. Importing this module registers the scheme.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers.aiokafka import Consumer, Producer, Transport
from faust.types import FutureMessage

SCHEME = "hotpath-kafka"
# What aiokafka needs so that an acknowledged record is on every in-sync replica and a retry is de-duplicated
# by the broker (idempotence requires acks=all).
IDEMPOTENT = {"acks": "all", "enable_idempotence": True}


class IdempotentProducer(Producer):
    """Faust's producer, always configured acks=all with idempotence, whose flush returns only once every
    record handed to it with ``send_soon`` (the table's changelog writes) is acknowledged by the broker.

    Faust commits the input offsets right after ``flush()``, and so does a rebalance before it hands the
    partitions over. Faust's own flush stops waiting for a buffered record after 0.1 s, and does not see one
    its buffer has taken but not yet handed to aiokafka (waiting for metadata or room in a batch): the commit
    could then go past a state write that a crash loses, and the next owner would recover the older state
    without reading the events again.
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        self.unacknowledged: set[FutureMessage] = set()
        self.failure: BaseException | None = None

    def _settings_extra(self) -> Mapping[str, Any]:
        # faust's own hook for producer options beyond its settings (it sets these two for transactions)
        return {**super()._settings_extra(), **IDEMPOTENT}

    def send_soon(self, fut: FutureMessage) -> None:
        self.unacknowledged.add(fut)
        fut.add_done_callback(self._acknowledged)
        super().send_soon(fut)

    def _acknowledged(self, fut: FutureMessage) -> None:
        self.unacknowledged.discard(fut)
        if not fut.cancelled() and fut.exception() is not None and self.failure is None:
            self.failure = fut.exception()

    async def flush(self) -> None:
        """Faust's flush, then wait for what ``send_soon`` took until now; raises (so nothing is committed
        past it) once a buffered record has failed, as its state is then missing from the changelog."""
        await super().flush()
        if self.unacknowledged:  # within the producer's request timeout, each either acknowledged or failed
            _, late = await asyncio.wait(list(self.unacknowledged), timeout=self.request_timeout)
            if late:
                self.failure = self.failure or TimeoutError(f"{len(late)} records unacknowledged after "
                                                            f"{self.request_timeout:.0f} s")
        if self.failure is not None:
            raise RuntimeError(f"a table's changelog write failed, its state is not durable: {self.failure!r}")


class GaplessConsumer(Consumer):
    """Faust's consumer, committing a partition's offset only over records processed from its committed position.

    During a rebalance, and while a worker stops, Faust skips the records that reach a stream without
    acknowledging them; the next assignment seeks back to the committed offset, so they are read again. But
    Faust's commit takes the first run of acknowledged offsets as safe when the partition has no committed
    offset yet (or 0), and lets one unprocessed record through otherwise (its head check allows a gap of
    one), so a commit could jump over skipped records and the next owner never read them: findings and
    entity events lost on a rebalance (tests/broker/test_rebalance.py). Faust offers no hook for which
    offsets are safe, so ``_new_offset`` is guarded here, with the partition's start learned at each seek.
    """

    async def perform_seek(self) -> None:
        await super().perform_seek()
        # Faust keeps "no commit yet" (and a commit of 0) as unknown; the start is then the partition's beginning.
        unknown = [tp for tp in self.assignment() if self._committed_offset[tp] is None]
        if unknown:
            self._committed_offset.update(await self.earliest_offsets(*unknown))

    def _new_offset(self, tp: Any) -> int | None:
        """None while the record at the committed position is not processed; else Faust's own answer."""
        start = self._committed_offset[tp]
        acked = self._acked[tp]
        if start is not None and acked:
            gaps = self._gap[tp]  # offsets Faust knows hold no record (compaction, transaction markers)
            head = min(min(acked), gaps.begin()) if gaps else min(acked)
            if head > start:
                return None
        return super()._new_offset(tp)


class IdempotentTransport(Transport):
    Consumer = GaplessConsumer
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
