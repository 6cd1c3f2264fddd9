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

from aiokafka.errors import IllegalStateError
from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers.aiokafka import Consumer, Producer, Transport
from faust.types import TP, FutureMessage

from stream.worker.continuity import Continuity, Verdict

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
    """Faust's consumer, committing a partition's offset only over records a stream processed.

    During a rebalance, and while a worker stops, Faust's streams skip the records that reach them; the next
    assignment seeks back to the committed offset, so they are read again, as long as no commit went past
    them and the fetch loop hands them over again. Neither held (tests/broker/test_rebalance.py lost findings
    and stalled partitions):
    - a fetch straddling a seek was delivered after it, and the jump taken for a gap (``getmany`` below);
    - records fetched after an assignment, before the seek to the committed offsets, were delivered (and
      processed twice), and those fetched again while that seek was under way were dropped as read already,
      so the partition stopped short of them for good (``seek_to_committed``, ``perform_seek``);
    - a skipped record was acknowledged as if processed (``ack``);
    - the commit took the first run of acknowledged offsets as safe when the partition had no committed offset
      yet (or 0), and let one unprocessed record through otherwise (its head check allows a gap of one).
    Faust offers no hook for which records a stream sees or which offsets are safe, so these are guarded here;
    the rule for which fetched record is delivered is stream.worker.continuity's.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.continuity = Continuity()
        self.seeks = 0  # how many seeks so far: a fetch that straddles one is checked record by record
        self.seeking_committed = False  # a seek to the committed offsets is under way: its targets are unknown
        self.held_back: set[TP] = set()  # partitions whose records arrived before it was done, to be sought again

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        self.continuity.assigned(tp for tp in assigned if self.app.topics.acks_enabled_for(tp.topic))
        await super().on_partitions_assigned(assigned, generation_id)

    async def getmany(self, timeout: float):  # type: ignore[override]
        """Faust's fetch, each stream's partition delivered once and in order from where it was last sought."""
        seeks = self.seeks
        delivered: set[TP] = set()  # partitions with a record delivered from this fetch
        refetching: set[TP] = set()
        acked_topic = self.app.topics.acks_enabled_for  # streams' topics; changelogs are Faust's recovery's
        async for tp, message in super().getmany(timeout):
            if tp in refetching:
                continue
            if not acked_topic(tp.topic):
                yield tp, message
                continue
            if self.seeking_committed or tp in self.continuity.unsought:
                self.held_back.add(tp)
                continue
            verdict, gap_from = self.continuity.judge(tp, message.offset,
                                                      fetched_after_seek=seeks == self.seeks and tp in delivered)
            if verdict is Verdict.DELIVER:
                if gap_from is not None:  # offsets with no record (compaction, transaction markers)
                    self._gap[tp].addi(gap_from, message.offset)
                if message.offset < (self._read_offset[tp] or 0):
                    # Faust's fetch loop keeps its own read position, which its seeks race with; it would drop
                    # the record as read already. Which records are new is decided above.
                    self._read_offset[tp] = None
                delivered.add(tp)
                yield tp, message
            elif verdict is Verdict.REFETCH:
                refetching.add(tp)
                await self.seek_if_assigned(tp, self.continuity.expected[tp])

    async def seek_to_committed(self) -> Mapping[TP, int]:
        self.seeks += 1
        self.seeking_committed = True
        try:
            offsets = await super().seek_to_committed()
        finally:
            self.seeking_committed = False
        for tp, offset in offsets.items():
            self.continuity.sought(tp, offset)
        return offsets

    async def seek_wait(self, partitions: Mapping[TP, int]) -> None:
        self.seeks += 1
        for tp, offset in partitions.items():
            self.continuity.sought(tp, offset)
        await super().seek_wait(partitions)

    async def _seek(self, partition: TP, offset: int) -> None:
        self.seeks += 1
        self.continuity.sought(partition, offset)
        await super()._seek(partition, offset)

    def ack(self, message: Any) -> bool:
        """Faust's ack, except for a record that no stream took: never counted as processed.

        While a rebalance holds the flow, or for a record fetched in an older generation, Faust's stream
        skips the record and acknowledges it all the same, as if processed; its offset was then committed
        and the partition's next owner started after it. A stream marks each record it takes
        (``message.tracked``), so one left unmarked was skipped: the next assignment's seek to the committed
        offset reads it again.
        """
        if not message.tracked:
            return False
        return super().ack(message)

    async def perform_seek(self) -> None:
        await super().perform_seek()
        assignment = self.assignment()
        # Faust keeps "no commit yet" (and a commit of 0) as unknown; the start is then the partition's beginning.
        unknown = [tp for tp in assignment if self._committed_offset[tp] is None]
        if unknown:
            self._committed_offset.update(await self.earliest_offsets(*unknown))
        for tp in self.continuity.unsought & assignment:  # no committed offset: the reset policy's position
            self.continuity.sought(tp, None)
        held_back, self.held_back = self.held_back, set()
        for tp in held_back & assignment:  # fetched past them before the seek was done: from there again
            await self.seek_if_assigned(tp, self._committed_offset[tp])

    async def seek_if_assigned(self, tp: TP, offset: int) -> None:
        """Seek ``tp``, unless a rebalance took it meanwhile (on aiokafka's thread): then nothing is to be read."""
        try:
            await self.seek(tp, offset)
        except (KeyError, IllegalStateError):  # aiokafka's answer for a partition it no longer holds
            self.continuity.sought(tp, None)

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
