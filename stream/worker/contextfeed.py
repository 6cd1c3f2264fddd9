"""Reads the shared context topics in full (every partition, no consumer group) into a Context.

Every worker needs every asset and every learned fact, whatever partitions of the entity stream it
owns; a group consumer would split them. A confluent-kafka consumer on a thread reads
``hotpath.context`` and ``hotpath.assets`` from the beginning and hands each batch to the event
loop, which applies it: the Context is only ever touched from the loop's thread.

One record that cannot be applied (a non-UTF-8 key, a malformed fact) is logged and skipped: it
costs that record, never the rest of its batch. If the thread itself stops (the broker refused the
consumer, a bug), ``failure`` says why and the health view reports the worker not ready, rather than
serving escalations scored on a context that no longer follows the topics.
"""

from __future__ import annotations

import asyncio
import logging
import threading

import orjson

from stream.entities.context import Context
from stream.ingest.formats.assets import decode_assets
from stream.kafka.clients import consumer
from stream.models import DecodeError
from stream.redact import mask_cut
from stream.settings import Settings

log = logging.getLogger("hotpath.context")
POLL_S = 0.2
BATCH = 500
MAX_FAILURE_CHARS = 300

# (topic, partition, offset, key, value) of one record read from a context topic
Record = tuple[str, int, int, bytes | None, bytes | None]


class ContextFeed:
    def __init__(self, settings: Settings, context: Context) -> None:
        self.settings = settings
        self.context = context
        self.caught_up = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.applied = 0
        self.skipped = 0
        self.failure: str | None = None
        """Why the feed stopped reading (masked, one line); None while it runs."""

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, args=(loop,), name="hotpath-context", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            self._read(loop)
        except Exception as exc:  # the worker keeps running on what it has; the health view shows not-ready
            self.failure = mask_cut(f"{type(exc).__name__}: {exc}", MAX_FAILURE_CHARS)
            log.error("context feed stopped: %s", self.failure)

    def _read(self, loop: asyncio.AbstractEventLoop) -> None:
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        topics = (self.settings.topic_context, self.settings.topic_assets)
        client = consumer(self.settings, group_id=f"{self.settings.app_id}-context-unused", enable_auto_commit=False)
        try:
            metadata = client.list_topics(timeout=10)
            partitions = [TopicPartition(t, p, OFFSET_BEGINNING)
                          for t in topics for p in (metadata.topics[t].partitions if t in metadata.topics else {})]
            ends = {(tp.topic, tp.partition): client.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions}
            client.assign(partitions)
            positions = {key: 0 for key in ends}
            self._check_caught_up(ends, positions)
            while not self._stop.is_set():
                messages = client.consume(BATCH, timeout=POLL_S)
                batch: list[Record] = []
                for message in messages:
                    if message.error():
                        log.warning("context feed: %s", message.error())
                        continue
                    positions[(message.topic(), message.partition())] = message.offset() + 1
                    batch.append((message.topic(), message.partition(), message.offset(), message.key(),
                                  message.value()))
                if batch:
                    loop.call_soon_threadsafe(self._apply, batch)
                if not self.caught_up.is_set():
                    self._check_caught_up(ends, positions)
        finally:
            client.close()

    def _check_caught_up(self, ends: dict, positions: dict) -> None:
        if all(positions[key] >= end for key, end in ends.items()):
            self.caught_up.set()

    def _apply(self, batch: list[Record]) -> None:
        for topic, partition, offset, key, value in batch:
            try:
                self.applied += self._apply_record(topic, key, value)
            except Exception as exc:  # one bad record costs that record, not the rest of the batch
                self.skipped += 1
                log.warning("context feed: skipped %s[%d]@%d: %s", topic, partition, offset,
                            mask_cut(f"{type(exc).__name__}: {exc}", MAX_FAILURE_CHARS))

    def _apply_record(self, topic: str, key: bytes | None, value: bytes | None) -> bool:
        """Apply one record; False for one the context has no use for (no key, a fact tombstone)."""
        if key is None:
            return False
        if value is None:
            if topic == self.settings.topic_assets:
                self.context.resolver.remove_asset(key.decode())
                return True
            return False
        if topic == self.settings.topic_assets:
            try:
                assets = decode_assets(value, self.settings.max_record_bytes, self.settings.max_json_depth)
            except DecodeError:
                return False  # the ingest agent dead-letters bad asset records
            for asset in assets:
                self.context.add_asset(asset)
        else:
            self.context.apply(key.decode(), orjson.loads(value))
        return True
