"""Where each pull left off, so a restarted or repeated pull publishes nothing twice and misses nothing.

One cursor per source, account and region (``securityhub/123456789012/eu-west-1``) holds the newest
update time published and the ids published at exactly that instant. The next pull takes what was
updated at or after the cursor and skips those ids, so records sharing the cursor's timestamp (a
scanner's batch import often gives thousands the same ``UpdatedAt``) are neither published again nor
missed.

Cursors live in the compacted topic ``<app_id>.aws-cursors`` (key = cursor name, value
``{"updated_at": ..., "seen_ids_at_cursor": [...]}``), read to its end at start; with ``--out`` they
live in a JSON file beside the output. A cursor is saved only after every record before it is
confirmed, and only at the end of a pass over one account and region: the API's order is not relied
on, so a pass cut short starts again from the last saved cursor (at least once, never a gap).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import orjson

from stream.settings import Settings

T = TypeVar("T")
READ_TIMEOUT_S = 30.0
# A cursor may list thousands of ids sharing one timestamp: allow records well over Kafka's 1 MB default.
CURSOR_MAX_BYTES = 16 * 1024 * 1024


class StateError(Exception):
    """Stored state (a cursor, a compacted topic) cannot be read; the message says which and what to do."""


def parse_time(value: str | datetime) -> datetime:
    """An AWS timestamp (RFC 3339 text, any fraction, or a datetime) as an aware UTC datetime."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Cursor:
    """Where one source's pulls got to; the empty cursor means "from the start"."""

    updated_at: datetime | None = None
    seen_ids_at_cursor: frozenset[str] = frozenset()

    def admits(self, item_id: str, at: datetime) -> bool:
        """True when an item updated ``at`` has not been published yet."""
        if self.updated_at is None or at > self.updated_at:
            return True
        return at == self.updated_at and item_id not in self.seen_ids_at_cursor

    def to_json(self) -> dict[str, object]:
        return {
            "updated_at": format_time(self.updated_at) if self.updated_at else None,
            "seen_ids_at_cursor": sorted(self.seen_ids_at_cursor),
        }

    @classmethod
    def from_json(cls, data: object) -> Cursor:
        if not isinstance(data, dict) or not isinstance(data.get("seen_ids_at_cursor", []), list):
            raise ValueError("expected {\"updated_at\": ..., \"seen_ids_at_cursor\": [...]}")
        updated_at = data.get("updated_at")
        return cls(parse_time(updated_at) if updated_at else None,
                   frozenset(str(item) for item in data.get("seen_ids_at_cursor", [])))

    def describe(self) -> str:
        return format_time(self.updated_at) if self.updated_at else "start"

    def not_after(self, now: datetime) -> Cursor:
        """This cursor, or ``now`` when it lies in the future (saved by a version that did not clamp)."""
        if self.updated_at is None or self.updated_at <= now:
            return self
        return Cursor(now)


class Progress:
    """One pass over a source: admits items against where the pass started, advances past each one.

    Items come as ``(id, updated_at, item)`` in any order; ``cursor`` is where the next pass starts once
    everything taken is confirmed. The cursor never passes ``now`` (when the pass started): one item
    stamped in the future (a provider's fast clock, a forged ``UpdatedAt`` of 2100) would otherwise
    move it past every update still to come, and nothing would be pulled again. Such an item is
    published, and published again by later passes until its time has come (at least once, never a gap).
    """

    def __init__(self, start: Cursor, now: datetime):
        self.start = start
        self.now = now
        self._updated_at = start.updated_at
        self._seen = set(start.seen_ids_at_cursor)

    def take(self, items: Iterable[tuple[str, datetime, T]]) -> list[T]:
        taken = []
        for item_id, at, item in items:
            if not self.start.admits(item_id, at):
                continue
            taken.append(item)
            at = min(at, self.now)
            if self._updated_at is None or at > self._updated_at:
                self._updated_at, self._seen = at, {item_id}
            elif at == self._updated_at:
                self._seen.add(item_id)
        return taken

    @property
    def cursor(self) -> Cursor:
        return Cursor(self._updated_at, frozenset(self._seen))


def cursor_topic(settings: Settings) -> str:
    return f"{settings.app_id}.aws-cursors"


def ensure_compacted_topic(settings: Settings, topic: str) -> None:
    """Create ``topic`` (compacted, one partition, as durable as every topic hotpath creates) unless it exists."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import NewTopic

    from stream.kafka.clients import admin, topic_durability_config

    # A metadata request for a missing topic would have the broker auto-create it with its defaults (not
    # compacted) when auto.create.topics.enable is on, as it is by default, before create_topics could.
    client = admin(settings, allow_auto_create_topics=False)
    try:
        if _visible(client, topic):
            return
        config = {"cleanup.policy": "compact", "max.message.bytes": str(CURSOR_MAX_BYTES),
                  **topic_durability_config(settings)}
        new = NewTopic(topic, num_partitions=1, replication_factor=settings.replication_factor, config=config)
        future = client.create_topics([new], operation_timeout=READ_TIMEOUT_S)[topic]
        try:
            future.result()
        except KafkaException as exc:  # another pull created it a moment ago
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
        deadline = time.monotonic() + READ_TIMEOUT_S
        while not _visible(client, topic):
            if time.monotonic() > deadline:
                raise StateError(f"created {topic}, but the broker did not show it within {READ_TIMEOUT_S:.0f}s")
            time.sleep(0.1)
    except KafkaException as exc:
        raise StateError(f"cannot create {topic} on Kafka at {settings.bootstrap_servers}: "
                          f"{exc.args[0].str()}") from None


def _visible(client, topic: str) -> bool:
    found = client.list_topics(topic, timeout=READ_TIMEOUT_S).topics.get(topic)
    return found is not None and found.error is None and bool(found.partitions)


def latest_values(settings: Settings, topic: str) -> dict[bytes, bytes | None]:
    """The newest value per key in ``topic``, read from the beginning to the current end (no group commit)."""
    from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

    from stream.kafka.clients import consumer

    reader = consumer(settings, f"{settings.app_id}.aws-reader", enable_auto_commit=False)
    try:
        found = reader.list_topics(topic, timeout=READ_TIMEOUT_S).topics.get(topic)
        if found is None or (found.error is not None and found.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
            raise StateError(f"topic {topic} does not exist: create it with `hotpath topics apply`")
        if found.error is not None:
            raise StateError(f"cannot read {topic}: {found.error.str()}")
        ends = {}
        for partition in found.partitions:
            low, high = reader.get_watermark_offsets(TopicPartition(topic, partition), timeout=READ_TIMEOUT_S)
            if high > low:
                ends[partition] = high
        reader.assign([TopicPartition(topic, partition, OFFSET_BEGINNING) for partition in ends])
        latest: dict[bytes, bytes | None] = {}
        deadline = time.monotonic() + READ_TIMEOUT_S
        while ends:
            message = reader.poll(0.2)
            if message is not None and message.error() is None:
                latest[message.key()] = message.value()
            elif message is not None and message.error().is_fatal():
                raise StateError(f"cannot read {topic}: {message.error().str()}")
            positions = reader.position([TopicPartition(topic, partition) for partition in ends])
            ends = {tp.partition: ends[tp.partition] for tp in positions if tp.offset < ends[tp.partition]}
            if ends and time.monotonic() > deadline:
                raise StateError(f"reading {topic} to its end took over {READ_TIMEOUT_S:.0f}s")
        return latest
    finally:
        reader.close()


class TopicCursorStore:
    """Cursors in the compacted ``<app_id>.aws-cursors`` topic."""

    def __init__(self, settings: Settings):
        from stream.sources.aws.publish import TopicSink

        self.topic = cursor_topic(settings)
        ensure_compacted_topic(settings, self.topic)
        self._cursors = {key.decode(errors="replace"): _decode(value, f"{self.topic} key {key!r}")
                         for key, value in latest_values(settings, self.topic).items()
                         if key is not None and value is not None}
        self._sink = TopicSink(settings, self.topic, message_max_bytes=CURSOR_MAX_BYTES, compression_type="zstd")

    def get(self, name: str) -> Cursor:
        return self._cursors.get(name, Cursor())

    def save(self, name: str, cursor: Cursor) -> None:
        self._sink.send(name, orjson.dumps(cursor.to_json()))
        self._sink.confirm()
        self._cursors[name] = cursor


class FileCursorStore:
    """Cursors in one JSON file (``{name: cursor}``), replaced atomically on every save."""

    def __init__(self, path: Path):
        self.path = path
        try:
            stored = orjson.loads(path.read_bytes()) if path.exists() else {}
        except (OSError, orjson.JSONDecodeError) as exc:
            raise StateError(f"cannot read the cursor file {path}: {exc}; remove it to pull from the start") from None
        if not isinstance(stored, dict):
            raise StateError(f"the cursor file {path} is not a JSON object; remove it to pull from the start")
        self._cursors = {name: _decode(value, f"{path} entry {name!r}") for name, value in stored.items()}

    def get(self, name: str) -> Cursor:
        return self._cursors.get(name, Cursor())

    def save(self, name: str, cursor: Cursor) -> None:
        self._cursors[name] = cursor
        document = {key: value.to_json() for key, value in sorted(self._cursors.items())}
        partial = self.path.with_name(self.path.name + ".partial")
        try:
            with partial.open("wb") as file:
                file.write(orjson.dumps(document, option=orjson.OPT_INDENT_2))
                file.flush()
                os.fsync(file.fileno())
            os.replace(partial, self.path)
        except OSError as exc:
            raise StateError(f"cannot save the cursor in {self.path}: {exc.strerror}") from None


def _decode(value: bytes | object, where: str) -> Cursor:
    """A cursor from a topic record (bytes) or a parsed file entry; anything else is a StateError."""
    try:
        return Cursor.from_json(orjson.loads(value) if isinstance(value, bytes) else value)
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise StateError(f"bad cursor in {where}: {exc}; delete it to pull that source from the start") from None
