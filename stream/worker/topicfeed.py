"""A feed of whole shared topics into state the event loop owns: the context feed and the policy feed.

A confluent-kafka consumer on a thread reads the topics from the beginning
(:class:`stream.kafka.wholetopic.WholeTopics`) and hands each batch to the event loop, which applies
it: the state is only ever touched from the loop's thread.

One record that cannot be applied (a non-UTF-8 key, a malformed value) is logged and skipped: it costs
that record, never the rest of its batch. If the thread itself stops (the broker refused the consumer,
a bug), ``failure`` says why and the health view reports the worker not ready, rather than serving
escalations judged on state that no longer follows the topics.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence

from prometheus_client import Counter

from stream.kafka.wholetopic import Record, WholeTopics
from stream.redact import mask_cut
from stream.settings import Settings

MAX_FAILURE_CHARS = 300


class TopicFeed:
    """Reads ``topics`` in full on a thread; subclasses say what one record does (:meth:`_apply_record`)."""

    name = "topic"

    def __init__(self, settings: Settings, topics: Sequence[str], records: Counter) -> None:
        self.settings = settings
        self.topics = tuple(topics)
        self.log = logging.getLogger(f"hotpath.{self.name}")
        self.caught_up = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.records = records  # hotpath_feed_records_total, labelled by feed and outcome
        self.failure: str | None = None
        """Why the feed stopped reading (masked, one line); None while it runs."""

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, args=(loop,), name=f"hotpath-{self.name}", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            reader = WholeTopics(self.settings, self.topics, warn=lambda error: self.log.warning("%s", error))
            for batch, caught_up in reader.batches(self._stop):
                if batch:
                    loop.call_soon_threadsafe(self._apply, batch)
                if caught_up and not self.caught_up.is_set():
                    # set on the loop, after the batches before it: caught up means applied, not only read
                    loop.call_soon_threadsafe(self.caught_up.set)
        except Exception as exc:  # the worker keeps running on what it has; the health view shows not-ready
            self.failure = mask_cut(f"{type(exc).__name__}: {exc}", MAX_FAILURE_CHARS)
            self.log.error("%s feed stopped: %s", self.name, self.failure)

    def _apply(self, batch: list[Record]) -> None:
        for topic, partition, offset, key, value in batch:
            try:
                outcome = "applied" if self._apply_record(topic, key, value) else "unused"
            except Exception as exc:  # one bad record costs that record, not the rest of the batch
                outcome = "skipped"
                self.log.warning("%s feed: skipped %s[%d]@%d: %s", self.name, topic, partition, offset,
                                 mask_cut(f"{type(exc).__name__}: {exc}", MAX_FAILURE_CHARS))
            self.records.labels(self.name, outcome).inc()
        self._applied_batch()

    def _apply_record(self, topic: str, key: bytes | None, value: bytes | None) -> bool:
        """Apply one record; False for one the state has no use for."""
        raise NotImplementedError

    def _applied_batch(self) -> None:
        """What to do once a batch is applied (nothing, unless a subclass says)."""
