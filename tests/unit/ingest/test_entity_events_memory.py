"""A ``hotpath.entity-events`` record waits in the producer's buffer until it is sent: it holds about its size."""

from __future__ import annotations

import tracemalloc

import orjson

from stream.ingest.entity_events import encode_events

RECORDS = 500


def test_an_encoded_record_holds_about_its_own_size_while_it_waits():
    events = [[f"arn:aws:dynamodb:eu-west-1:111122223333:table/orders-{index}", {"kind": "touch", "spans": 3}]
              for index in range(3)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        waiting = [encode_events(events, 1 << 19)[0][0] for _ in range(RECORDS)]
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert orjson.loads(waiting[-1]) == events
    # A bytes object's header and the list's slot are under 100 B; orjson's own output held 4 KB or more each.
    assert held < sum(len(record) + 100 for record in waiting)
