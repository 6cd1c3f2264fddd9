"""Crash safety of the correlate stage: every escalation version reaches ``hotpath.escalations`` once.

Without Kafka transactions, an entity's state (its changelog record) and the escalations that state
records go to the broker as separate writes, and a SIGKILL can land between them:

* state first, escalation lost: the redelivered event looks applied (its ``pos``) and is skipped, so
  the escalation would never be published. :class:`HeldWrites` rules this out: the worker writes an
  entity's new state only once the escalations it records are acknowledged.
* escalation first, state lost: the redelivered event is applied again to the older state and
  would emit the same (finding, version) a second time. After a partition is assigned, the worker
  reads back the escalations published since that partition's first redelivered event
  (:func:`emitted_since`) and :meth:`stream.correlate.correlator.Correlator.reconcile` raises the recovered
  states to them, so the redelivered event finds its escalation already recorded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, MutableMapping
from typing import Any

import orjson

from stream.correlate.state import EntityState
from stream.kafka.clients import consumer
from stream.settings import Settings

log = logging.getLogger("hotpath.recovery")
# Escalations are stamped by the worker that emitted them, entity events by the one that produced
# them: read back from this long before the first redelivered event, to cover clock skew.
CLOCK_SKEW_S = 30.0
READ_TIMEOUT_S = 30.0
RECONCILED_TEXT = ("finding_uid", "resource", "state", "priority")


class HeldWrites(MutableMapping):
    """The entity-state table with writes held back until :meth:`release`.

    Reads see held writes; deletions go straight through (an idle entity records no escalation).
    """

    def __init__(self, table: MutableMapping[str, EntityState]) -> None:
        self.table = table
        self.held: dict[str, EntityState] = {}

    def __getitem__(self, key: str) -> EntityState:
        held = self.held.get(key)
        return held if held is not None else self.table[key]

    def get(self, key: str, default: EntityState | None = None) -> EntityState | None:
        held = self.held.get(key)
        return held if held is not None else self.table.get(key, default)

    def __setitem__(self, key: str, value: EntityState) -> None:
        self.held[key] = value

    def __delitem__(self, key: str) -> None:
        self.held.pop(key, None)
        self.table.pop(key, None)

    def __iter__(self) -> Iterator[str]:
        yield from self.held
        yield from (key for key in self.table if key not in self.held)

    def __len__(self) -> int:
        return len(self.held) + sum(1 for key in self.table if key not in self.held)

    def items(self):
        return self.table.items() if not self.held else super().items()

    def discard(self, key: str) -> None:
        """Drop the held write of ``key``: the table keeps the state it had before the held events."""
        self.held.pop(key, None)

    def release(self) -> None:
        """Write the held states to the table (and so to its changelog)."""
        for key, value in self.held.items():
            self.table[key] = value
        self.held.clear()


def emitted_since(settings: Settings, since_s: float) -> list[dict[str, Any]]:
    """The escalation events published at or after ``since_s`` (epoch seconds), from every partition."""
    from confluent_kafka import TopicPartition

    topic = settings.topic_escalations
    client = consumer(settings, group_id=f"{settings.app_id}-recovery", enable_auto_commit=False)
    try:
        partitions = client.list_topics(topic, timeout=10).topics[topic].partitions
        wanted = [TopicPartition(topic, p, int(since_s * 1000)) for p in partitions]
        starts = client.offsets_for_times(wanted, timeout=10)
        ends = {tp.partition: client.get_watermark_offsets(tp, timeout=10)[1] for tp in starts}
        todo = [tp for tp in starts if 0 <= tp.offset < ends[tp.partition]]
        client.assign(todo)
        unread = {tp.partition for tp in todo}
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + READ_TIMEOUT_S
        while unread:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{topic}: partitions {sorted(unread)} not read to their end in {READ_TIMEOUT_S:.0f}s")
            for message in client.consume(500, 0.05):
                if message.error() is not None:
                    continue
                if message.offset() + 1 >= ends[message.partition()]:
                    unread.discard(message.partition())
                event = _escalation(message.value())
                if event is not None:
                    events.append(event)
        return events
    finally:
        client.close()


def _escalation(value: bytes | None) -> dict[str, Any] | None:
    """The event if it carries what reconciling needs (the topic is ours, but others can write to it)."""
    try:
        event = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    if not isinstance(event, dict) or not all(isinstance(event.get(k), str) for k in RECONCILED_TEXT):
        return None
    return event if isinstance(event.get("version"), int) and isinstance(event.get("score"), int | float) else None
