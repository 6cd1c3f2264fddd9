"""Reaching Kafka: a bounded wait at start-up, and librdkafka's log lines folded.

librdkafka reconnects many times a second and logs every failure, so a process started while its
brokers are unreachable would print hundreds of lines and wait forever. Instead a process asks the
brokers once, within ``HOTPATH_KAFKA_CONNECT_TIMEOUT_S``, and stops with one line saying which
servers it tried and what to check; and the client's log lines are folded: the first of each kind
goes through, then at most one per interval, carrying how many like it were folded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from stream.kafka import clients as kafka
from stream.settings import Settings

CLIENT_LOG_INTERVAL_S = 60.0
# librdkafka has a few dozen log facilities and error codes; more kinds than this means something odd
# is varying, and forgetting them all keeps the memory bounded.
MAX_LOG_KINDS = 256


class KafkaUnavailable(Exception):
    """The brokers did not answer in time, or a topic the process needs is missing. One line."""


def check_brokers(settings: Settings, topics: Iterable[str] = ()) -> None:
    """Return once the brokers answer and ``topics`` exist; KafkaUnavailable after the connect timeout."""
    from confluent_kafka import KafkaException

    timeout_s = settings.kafka_connect_timeout_s
    try:
        metadata = kafka.admin(settings).list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise KafkaUnavailable(
            f"cannot reach Kafka at {settings.bootstrap_servers} within {timeout_s:g}s ({exc.args[0].str()}): "
            "check HOTPATH_BOOTSTRAP_SERVERS and HOTPATH_SECURITY_PROTOCOL, and that the brokers are up "
            "and reachable from here") from None
    missing = sorted(set(topics) - set(metadata.topics))
    if missing:
        raise KafkaUnavailable(f"topics missing on {settings.bootstrap_servers}: {', '.join(missing)}; "
                               "create them with `hotpath topics apply`")


class FoldRepeats(logging.Filter):
    """Lets the first line of each kind through, then one per ``interval_s`` with the count it folded.

    A line's kind is its level and its first argument (librdkafka's facility, e.g. ``FAIL``, or an
    error code), so the same failure against another broker address still folds.
    """

    def __init__(self, interval_s: float = CLIENT_LOG_INTERVAL_S, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self._interval_s = interval_s
        self._clock = clock
        self._windows: dict[tuple[int, str], list] = {}  # kind -> [start of its window, lines folded in it]

    def filter(self, record: logging.LogRecord) -> bool:
        kind = (record.levelno, str(record.args[0]) if isinstance(record.args, tuple) and record.args else record.msg)
        now = self._clock()
        window = self._windows.get(kind)
        if window is not None and now - window[0] < self._interval_s:
            window[1] += 1
            return False
        if window is not None and window[1]:
            record.folded = window[1]
            record.folded_over_s = round(now - window[0], 1)
        if window is None and len(self._windows) >= MAX_LOG_KINDS:
            self._windows.clear()
        self._windows[kind] = [now, 0]
        return True


def fold_client_logs(interval_s: float = CLIENT_LOG_INTERVAL_S) -> None:
    """Fold the Kafka clients' log lines (stream.kafka.clients sends them to one logger); idempotent."""
    if not any(isinstance(existing, FoldRepeats) for existing in kafka.LIBRDKAFKA_LOG.filters):
        kafka.LIBRDKAFKA_LOG.addFilter(FoldRepeats(interval_s))

