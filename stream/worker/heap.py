"""The worker's heap and CPython's cyclic garbage collector.

Once started, a worker holds a large heap that lives as long as it does (Faust, aiokafka, the shared
context, the policy) and allocates briskly per record. CPython's collector walks that whole heap in each
full collection and finds almost nothing in it: under the quick benchmark a full collection cost ~65 ms
of CPU every ~5 s and, with the young collections, ~10 % of the worker's CPU. Once the start-up heap is
built it is frozen (``gc.freeze``: left out of every later collection, while reference counting still
frees what it drops), and the young generation is collected after more allocations than CPython's 700.
"""

from __future__ import annotations

import gc

YOUNG_COLLECTION_ALLOCATIONS = 10_000  # container allocations between two young collections


def freeze_start_up_heap() -> int:
    """Keep the heap built so far out of later collections and collect young objects less often; the number
    of objects frozen."""
    gc.collect()  # start-up's own cyclic garbage goes first: once frozen, it would stay
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_ALLOCATIONS, middle, oldest)
    return gc.get_freeze_count()
