"""The correlate agent holds a chunk of ``hotpath.entity-events`` records until it is settled: what it keeps of
each applied record is its position, not its bytes (bench/memory.py measures the worker's whole footprint)."""

from __future__ import annotations

import sys

from engine_harness import T0, Harness, touch
from faust.events import Event
from faust.types.tuples import Message

from stream.ingest.entity_events import encode_events
from stream.worker.agents import drop_value

TOPIC = "hotpath.entity-events"
CHUNK = 64
ENTITIES_PER_RECORD = 40


def record(offset: int) -> Event:
    """A received entity-events record of ``ENTITIES_PER_RECORD`` tables touched, as Faust hands it over."""
    events = [[f"arn:aws:dynamodb:eu-west-1:111122223333:table/orders-{offset}-{index}",
               touch("x", ["service:api"], 0.0).to_record()] for index in range(ENTITIES_PER_RECORD)]
    value = encode_events(events, 1 << 20)[0][0]
    message = Message(TOPIC, 0, offset, T0, 0, None, None, value, None)
    return Event(None, None, value, None, message)


def test_a_chunk_lets_go_of_the_records_it_applied_and_keeps_their_positions():
    harness = Harness(max_unclaimed_entities=CHUNK * ENTITIES_PER_RECORD)
    chunk = [record(offset) for offset in range(CHUNK)]
    received = [event.value for event in chunk]
    for event in chunk:
        harness.engine.apply(0, event.message.offset, event.value, event.message)
        drop_value(event)
    # The chunk's references were the last on the records' bytes: all of them are gone before it settles.
    # Three references each: this list's, the loop's name and getrefcount's argument.
    assert [sys.getrefcount(value) for value in received] == [3] * CHUNK
    assert [event.message.offset for event in chunk] == list(range(CHUNK))  # what the commit needs stays
    harness.engine.settle()
    harness.engine.release()
    assert len(harness.store.table) == CHUNK * ENTITIES_PER_RECORD


def test_a_record_parked_whole_keeps_its_bytes_for_the_dead_letter_topic():
    harness = Harness()
    garbage = b'{"not": "entity events"}'
    event = Event(None, None, garbage, None, Message(TOPIC, 0, 7, T0, 0, None, None, garbage, None))
    harness.engine.apply(0, 7, event.value, event.message)
    drop_value(event)
    [parked] = harness.engine.settle().parked
    assert parked.value == garbage and parked.origin.offset == 7
