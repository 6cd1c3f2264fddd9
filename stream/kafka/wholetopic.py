"""Reading whole topics: every partition from the beginning, with no consumer group.

The shared topics (``hotpath.context``, ``hotpath.assets``, ``hotpath.policy``) are read in full by every
worker, whatever partitions of the entity stream it owns; a group consumer would split them. A reader
notes each partition's end offset when it starts, so it can tell when it has caught up with what the
topics held then, and then follows what arrives.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from stream.kafka.clients import consumer
from stream.settings import Settings

POLL_S = 0.2
BATCH = 500
METADATA_TIMEOUT_S = 10

# (topic, partition, offset, key, value) of one record read
Record = tuple[str, int, int, bytes | None, bytes | None]


class WholeTopics:
    """A consumer assigned every partition of ``topics`` from the beginning (absent topics are skipped);
    ``warn`` is told of each error the consumer reports along the way."""

    def __init__(self, settings: Settings, topics: Sequence[str], warn: Callable[[Any], None] | None = None) -> None:
        self.settings = settings
        self.topics = tuple(topics)
        self.warn = warn

    def batches(self, stop: threading.Event) -> Iterator[tuple[list[Record], bool]]:
        """Each batch read, with whether everything the topics held at the start has now been read; until
        ``stop`` is set. An empty batch is yielded when nothing arrived within a poll."""
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        client = consumer(self.settings, group_id=f"{self.settings.app_id}-whole-topics-unused",
                          enable_auto_commit=False)
        try:
            metadata = client.list_topics(timeout=METADATA_TIMEOUT_S)
            partitions = [TopicPartition(t, p, OFFSET_BEGINNING) for t in self.topics
                          for p in (metadata.topics[t].partitions if t in metadata.topics else {})]
            watermarks = {(tp.topic, tp.partition): client.get_watermark_offsets(tp, timeout=METADATA_TIMEOUT_S)
                          for tp in partitions}
            # Where each partition that holds something ends; one emptied by retention (its low watermark at its
            # high one) gives the consumer no position until a record arrives, and holds nothing to wait for.
            ends = {key: high for key, (low, high) in watermarks.items() if high > low}
            client.assign(partitions)
            caught_up = False
            while not stop.is_set():
                batch: list[Record] = []
                for message in client.consume(BATCH, timeout=POLL_S):
                    if message.error():
                        if self.warn is not None:
                            self.warn(message.error())
                        continue
                    batch.append((message.topic(), message.partition(), message.offset(), message.key(),
                                  message.value()))
                # The consumer's position, not the last record's offset: a partition written in transactions
                # ends with a commit marker, an offset no record is read from.
                caught_up = caught_up or all(position.offset >= ends[(position.topic, position.partition)]
                                             for position in client.position(partitions)
                                             if (position.topic, position.partition) in ends)
                yield batch, caught_up
        finally:
            client.close()


def read_to_end(settings: Settings, topics: Sequence[str]) -> list[Record]:
    """Every record the topics hold now, in each partition's order."""
    stop = threading.Event()
    records: list[Record] = []
    for batch, caught_up in WholeTopics(settings, topics).batches(stop):
        records.extend(batch)
        if caught_up:
            stop.set()
    return records
