"""What the worker holds per entity state written, on a real Faust table: the changelog writes a chunk
leaves waiting in the producer's buffer must not cost kilobytes each (bench/memory.py measures the whole)."""

from __future__ import annotations

import tracemalloc

import pytest

from stream.correlate.state import Bucket, EntityState
from stream.worker.app import create_app

pytestmark = pytest.mark.kafka

WRITES = 2000


async def test_a_waiting_changelog_write_holds_well_under_a_kilobyte_and_a_half(hotpath_settings):
    # async: Faust makes each pending write a future on the running loop (an earlier asyncio.run leaves none set)
    hotpath = create_app(hotpath_settings)
    table = hotpath.engine.store.table
    keys = [f"arn:aws:dynamodb:eu-west-1:111122223333:table/bench-entity-{index:07d}" for index in range(WRITES)]
    states = [EntityState(clock=1.0e9, buckets=[Bucket(1.0e9, 3, 0)], callers={"service:api": 1.0e9},
                          partition=index % 12) for index in range(WRITES)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for key, state in zip(keys, states, strict=True):
            table[key] = state  # the producer is not started: every changelog write waits in its buffer
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(table) == WRITES
    # The encoded state, its store entry and Faust's pending message take about 700 B; the key was a further
    # 4 KB when Faust's JSON codec (orjson) encoded it.
    assert held / WRITES < 1536, f"{held / WRITES:.0f} B per write"
