"""The ``hotpath.entity-events`` record: entity events grouped by partition, encoded, read back.

Ingest writes it (one record per partition per routed batch), the correlate stage reads it. The
topic is internal, but anything with access to it can write there, so reading checks the shape.
"""

from __future__ import annotations

import orjson

from stream.ingest.router import Event
from stream.jsonsafe import dumps_kept

EVENTS_PER_RECORD = 1 << 20  # room for each event of one record in the position the correlator dedups on
TICK = orjson.dumps({"kind": "tick"})


class EntityPartitioner:
    """Groups one input record's entity events by the partition of ``hotpath.entity-events`` they belong to.

    A trace batch reaches dozens of entities; one Kafka record per partition instead of one per
    entity is what keeps the worker's cost per batch, not per entity. The partition is the one a
    record keyed by the entity id would get from aiokafka (Faust) or from confluent-kafka's
    ``murmur2_random``, so each entity's events and its state stay on one partition. The pure-Python
    murmur2 costs microseconds, and the same entities recur in every batch: results are cached.
    """

    def __init__(self, partitions: int, max_cached: int = 100_000) -> None:
        from aiokafka.partitioner import murmur2

        self.partitions = partitions
        self.max_cached = max_cached
        self._murmur2 = murmur2
        self._partition_of: dict[str, int] = {}

    def partition(self, entity: str) -> int:
        partition = self._partition_of.get(entity)
        if partition is None:
            if len(self._partition_of) >= self.max_cached:
                self._partition_of.clear()
            partition = (self._murmur2(entity.encode()) & 0x7FFFFFFF) % self.partitions
            self._partition_of[entity] = partition
        return partition

    def split(self, events: list[Event]) -> dict[int, list[Event]]:
        """The events per partition, each partition's in their original order."""
        by_partition: dict[int, list[Event]] = {}
        for event in events:
            partition = self.partition(event[0])
            if partition in by_partition:
                by_partition[partition].append(event)
            else:
                by_partition[partition] = [event]
        return by_partition


def encode_events(events: list[Event], max_bytes: int) -> tuple[list[bytes], list[Event]]:
    """``hotpath.entity-events`` record values ``[[entity, record], ...]`` of at most ``max_bytes`` each,
    in order, and the events too large to fit in any.

    A batch reaching thousands of entities would otherwise make a record over the broker's
    ``message.max.bytes`` (1 MB) and the producer's request size: it is split between events. The
    usual batch is one record, encoded once, and kept in bytes of its own size while it waits to be sent.
    """
    whole = dumps_kept(events)
    if len(whole) <= max_bytes:
        return [whole], []
    records: list[bytes] = []
    too_large: list[Event] = []
    part: list[bytes] = []
    size = 2  # the brackets
    for event in events:
        encoded = orjson.dumps(event)
        if len(encoded) + 2 > max_bytes:
            too_large.append(event)
            continue
        if part and size + 1 + len(encoded) > max_bytes:
            records.append(b"[" + b",".join(part) + b"]")
            part, size = [], 2
        size += len(encoded) + (1 if part else 0)
        part.append(encoded)
    if part:
        records.append(b"[" + b",".join(part) + b"]")
    return records, too_large


def event_position(offset: int, index: int) -> int:
    """Where the ``index``-th event of the record at ``offset`` stands in its partition (for redelivery checks)."""
    return offset * EVENTS_PER_RECORD + index


def read_entity_events(value: bytes | None) -> list[list] | None:
    """The (entity, event) pairs of one ``hotpath.entity-events`` record, or None for a tick.

    The topic is internal, but anything with access can write to it: a value of another shape is a
    ValueError, never a crash of the correlate agent.
    """
    try:
        document = orjson.loads(value or b"")
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if isinstance(document, dict) and document.get("kind") == "tick":
        return None
    if not isinstance(document, list) or not all(
            isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str) and isinstance(pair[1], dict)
            for pair in document):
        raise ValueError("expected a JSON array of [entity id, event object] pairs")
    return document
