"""The worker's start-up heap is frozen out of the garbage collector's walks (stream.worker.heap): a full
collection no longer walks what start-up built, so its cost follows what the worker allocates since."""

from __future__ import annotations

import gc
import time

import pytest

from stream.worker.heap import YOUNG_COLLECTION_ALLOCATIONS, freeze_start_up_heap


@pytest.fixture
def restored_collector():
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def full_collection_cpu_s() -> float:
    """The least CPU time of a few full collections (the least is the one the machine disturbed least)."""
    spent = []
    for _ in range(5):
        started = time.thread_time()
        gc.collect()
        spent.append(time.thread_time() - started)
    return min(spent)


def test_a_full_collection_no_longer_walks_the_start_up_heap(restored_collector):
    start_up_heap = [{"entity": f"arn:aws:s3:::bucket-{i}", "callers": [i]} for i in range(200_000)]
    before = full_collection_cpu_s()
    freeze_start_up_heap()
    assert gc.get_freeze_count() >= 2 * len(start_up_heap), "every dict and list start-up built is frozen"
    assert gc.get_threshold()[0] == YOUNG_COLLECTION_ALLOCATIONS
    after = full_collection_cpu_s()
    assert after * 5 < before, (before, after)
    start_up_heap.clear()  # reference counting still frees what the worker drops
