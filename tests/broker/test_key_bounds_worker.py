"""A live worker splits a trace batch naming thousands of entities into records the broker takes, and
dead-letters what a message names over the caps (the caps themselves: tests/unit/ingest/test_key_bounds.py)."""

from __future__ import annotations

import time

import orjson
import pytest
from hostile import tables_call
from workers import HotpathProcess, read_topic

from stream.demo.tracegen import TraceBuilder
from stream.kafka.clients import consumer, producer

T0 = 1_772_446_800.0
RECORD_LIMIT = 256 * 1024
SPLIT_SPANS, SPLIT_TABLES = 4, 5000  # 20,000 entity events: several MB, past the broker's 1 MB per record
OVER_CAP_TABLES = 30_000
WORKER_CAP = SPLIT_SPANS * SPLIT_TABLES


def table_message(prefix: str, spans: int, tables: int) -> bytes:
    builder = TraceBuilder(seed=9)
    for span in range(spans):
        names = tuple(f"{prefix}-{span}-{n}" for n in range(tables))
        builder.client_span("orders", "BatchGetItem", start=T0 + span, attributes=tables_call(names))
    return builder.to_otlp_proto()


def raw_records(settings, topic: str, until) -> list[bytes]:
    """The values of ``topic`` from the beginning, until ``until(values)`` holds (or 120 s have passed)."""
    client = consumer(settings, group_id=f"test-raw-{time.monotonic_ns()}", enable_auto_commit=False)
    client.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and not until(values):
            message = client.poll(0.5)
            if message is not None and not message.error():
                values.append(message.value())
    finally:
        client.close()
    return values


def events_on(values: list[bytes], marker: str) -> int:
    """How many entity events name ``marker`` (ticks, also on the topic, are objects, not event lists)."""
    batches = [batch for batch in map(orjson.loads, values) if isinstance(batch, list)]
    return sum(1 for batch in batches for entity, _ in batch if marker in entity)


@pytest.mark.kafka
def test_worker_splits_large_batches_and_dead_letters_what_a_message_names_over_the_caps(hotpath_settings, tmp_path):
    settings = hotpath_settings
    caps = {"max_entities_per_span": WORKER_CAP, "max_entities_per_message": WORKER_CAP,
            "max_event_record_bytes": RECORD_LIMIT, "max_unclaimed_entities": 1000}
    with HotpathProcess("worker", settings, tmp_path, **caps) as worker:
        worker.wait_ready()
        writer = producer(settings)
        writer.produce(settings.topic_traces, key=b"many", value=table_message("split", SPLIT_SPANS, SPLIT_TABLES))
        writer.produce(settings.topic_traces, key=b"over-cap", value=table_message("over", 1, OVER_CAP_TABLES))
        assert writer.flush(60) == 0
        events = raw_records(settings, settings.topic_entity_events,
                             until=lambda values: events_on(values, "table/over") >= WORKER_CAP)
        dead = read_topic(settings, settings.topic_dlq, until=lambda records: len(records) >= 1, idle=5)
        facts = read_topic(settings, settings.topic_context, idle=5, timeout=20)
        assert worker.proc.poll() is None, worker.log_tail()

    assert (events_on(events, "table/split"), events_on(events, "table/over")) == (WORKER_CAP, WORKER_CAP)
    assert max(len(value) for value in events) <= RECORD_LIMIT
    ((key, letter),) = dead
    assert key == b"over-cap" and letter["origin"]["topic"] == settings.topic_traces
    assert letter["reason"].endswith(f": {OVER_CAP_TABLES - WORKER_CAP} dropped, the rest routed")
    assert not [key for key, _ in facts if b"table/" in key]  # made-up tables stay off the shared call graph
