"""The entity-state table wrapper on a real Faust table and broker: each state lands in its own entity's
changelog partition, whatever partition the write happens under; a delete sends a tombstone there; the
bytes kept and sent are exactly the state's encoding (stream.correlate.state)."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from stream.correlate.state import AlertSeen, EntityState, encode
from stream.kafka.clients import consumer
from stream.worker.app import create_app
from stream.worker.table import EntityTable

pytestmark = pytest.mark.kafka


def changelog(settings, topic: str, expected: int, timeout: float = 30.0) -> list[tuple[int, bytes, bytes | None]]:
    """(partition, key, value) of the first ``expected`` records of ``topic``."""
    client = consumer(settings, group_id=f"test-changelog-{time.monotonic_ns()}", enable_auto_commit=False)
    client.subscribe([topic])
    records: list[tuple[int, bytes, bytes | None]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(records) < expected and time.monotonic() < deadline:
            message = client.poll(0.5)
            if message is not None and not message.error():
                records.append((message.partition(), message.key(), message.value()))
    finally:
        client.close()
    return records


async def test_states_land_in_their_entity_partition_deletes_send_tombstones_and_bytes_stay_exact(hotpath_settings):
    hotpath = create_app(hotpath_settings)
    table: EntityTable = hotpath.engine.store.table
    faust_table = table.table
    # past a 4 KiB encoding buffer, which must not be what the table keeps
    big = EntityState(partition=2, alerts=[AlertSeen(1.0, "a" * 5000, "falco", "rule", "high", "")])
    small = EntityState(partition=0, clock=1.5, callers={"service:api": 1.5})
    topic = faust_table.changelog_topic.get_topic_name()
    await hotpath.app.producer.start()
    try:
        await faust_table.changelog_topic.maybe_declare()
        table["arn:big"], table["arn:small"] = big, small
        del table["arn:small"]
        await hotpath.app.producer.flush()
        # Read back while the producer still runs: Faust's buffer may still be handing the first record to
        # aiokafka (waiting for the new topic's metadata) when flush returns, and stopping would drop it.
        records = await asyncio.get_running_loop().run_in_executor(None, changelog, hotpath_settings, topic, 3)
    finally:
        await hotpath.app.producer.stop()

    assert faust_table.data["arn:big"] == encode(big)
    assert len(faust_table.data["arn:big"]) == len(encode(big)) > 5000, "the encoding buffer was kept"
    assert table["arn:big"] == big and "arn:small" not in table and list(table) == ["arn:big"]
    assert [(partition, orjson.loads(key), value) for partition, key, value in records if partition == 2] == [
        (2, "arn:big", encode(big))]
    assert [(partition, orjson.loads(key), value) for partition, key, value in records if partition == 0] == [
        (0, "arn:small", encode(small)), (0, "arn:small", None)]
