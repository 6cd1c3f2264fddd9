"""Where the connectors put records: a Kafka topic, or an NDJSON file with ``--out``.

Either way ``confirm()`` returns only when every record sent so far is durably accepted (Kafka's
delivery reports, or the file flushed and synced), and raises otherwise. Cursors advance after it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from stream.settings import Settings

CONFIRM_TIMEOUT_S = 90.0
# Below CONFIRM_TIMEOUT_S, so an unreachable broker fails the delivery before the flush gives up.
_MESSAGE_TIMEOUT_MS = 60_000


class PublishError(Exception):
    """Records could not be confirmed; the message is one line."""


class TopicSink:
    """Keyed records to one topic, partitioned like Faust partitions them."""

    def __init__(self, settings: Settings, topic: str, **producer_overrides: Any):
        from stream.kafka.clients import producer

        self.topic = topic
        self.bootstrap = settings.bootstrap_servers
        self._producer = producer(settings, message_timeout_ms=_MESSAGE_TIMEOUT_MS, **producer_overrides)
        self._failures: list[str] = []

    def send(self, key: str, value: bytes) -> None:
        from confluent_kafka import KafkaException

        while True:
            try:
                self._producer.produce(self.topic, key=key.encode(), value=value, on_delivery=self._delivered)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                self._producer.poll(0.5)
            except KafkaException as exc:
                raise PublishError(f"cannot publish to {self.topic}: {exc.args[0].str()}") from None
        self._producer.poll(0)

    def _delivered(self, error, message) -> None:
        if error is not None:
            self._failures.append(error.str())

    def confirm(self) -> None:
        remaining = self._producer.flush(CONFIRM_TIMEOUT_S)
        failures, self._failures = self._failures, []
        if remaining:
            raise PublishError(f"{remaining} records to {self.topic} not confirmed by Kafka at {self.bootstrap} "
                               f"within {CONFIRM_TIMEOUT_S:.0f}s")
        if failures:
            raise PublishError(f"{len(failures)} records to {self.topic} failed: {failures[0]}")


class FileSink:
    """NDJSON lines appended to a file; the key is not written (the value carries the id)."""

    def __init__(self, path: Path):
        self.path = path
        with self._reporting():
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("ab")

    def send(self, key: str, value: bytes) -> None:
        with self._reporting():
            self._file.write(value + b"\n")

    def confirm(self) -> None:
        with self._reporting():
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    @contextmanager
    def _reporting(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise PublishError(f"cannot write {self.path}: {exc.strerror}") from None
