"""Reaching Kafka: the Kafka clients' repeated log lines are folded, and a missing broker is reported in one line."""

from __future__ import annotations

import logging

from stream.demo.ports import free_port
from stream.kafka import clients as kafka
from stream.kafka.connect import FoldRepeats
from stream.settings import load_settings


def client_line(facility: str, text: str, level: int = logging.ERROR) -> logging.LogRecord:
    """A log record as confluent-kafka hands librdkafka's lines to Python logging."""
    return logging.LogRecord("hotpath.librdkafka", level, __file__, 0, "%s [%s] %s",
                             (facility, "rdkafka#consumer-1", text), None)


def test_repeated_client_lines_pass_once_then_once_per_interval_with_the_count_folded():
    now = [0.0]
    fold = FoldRepeats(interval_s=60.0, clock=lambda: now[0])
    refused = [client_line("FAIL", f"127.0.0.1:{9092 + n % 3}/bootstrap: Connect failed: Connection refused")
               for n in range(500)]

    passed = []
    for index, line in enumerate(refused):
        now[0] = index * 0.05  # 25 s of a reconnect every 50 ms
        passed += [line] if fold.filter(line) else []
    other_kind = client_line("REQTMOUT", "timed out")
    now[0] = 61.0
    summary = client_line("FAIL", "127.0.0.1:9092/bootstrap: Connect failed: Connection refused")

    assert passed == [refused[0]] and not hasattr(refused[0], "folded")
    assert fold.filter(other_kind), "another kind of line is not held back by the first"
    assert fold.filter(summary) and summary.folded == 499 and summary.folded_over_s == 61.0
    assert not fold.filter(client_line("FAIL", "again"))


def test_a_consumer_without_a_broker_logs_its_failures_folded():
    seen: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    collect, fold = Collect(), FoldRepeats()
    kafka.LIBRDKAFKA_LOG.addHandler(collect)
    kafka.LIBRDKAFKA_LOG.addFilter(fold)
    consumer = kafka.consumer(load_settings(bootstrap_servers=f"127.0.0.1:{free_port()}"), "nobody-listens")
    try:
        consumer.subscribe(["hotpath.escalations"])
        for _ in range(10):  # librdkafka retries the connection every few tens of milliseconds meanwhile
            consumer.consume(10, 0.2)
    finally:
        consumer.close()
        kafka.LIBRDKAFKA_LOG.removeFilter(fold)
        kafka.LIBRDKAFKA_LOG.removeHandler(collect)

    kinds = [(record.levelno, record.args[0]) for record in seen]
    assert kinds and len(kinds) == len(set(kinds)), f"repeated lines went through: {[r.getMessage() for r in seen]}"
