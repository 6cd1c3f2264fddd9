"""A chunk reaching thousands of entities is settled in parts: the decoded states held at once stay a few hundred
(each takes kilobytes of objects, and what a worker's heap grew to it keeps; bench/memory.py measures it)."""

from __future__ import annotations

from engine_harness import PARTITION, Harness, touch

ENTITIES_PER_RECORD = 64
RECORDS = 40  # one chunk, 2,560 entities


def test_a_chunk_of_thousands_of_entities_holds_a_few_hundred_decoded_states_at_once():
    harness = Harness(max_unclaimed_entities=ENTITIES_PER_RECORD * RECORDS)
    engine, peak = harness.engine, 0
    for offset in range(RECORDS):  # as the correlate agent applies a chunk
        events = [(f"arn:aws:dynamodb:eu-west-1:111122223333:table/orders-{offset}-{index}",
                   touch("x", ["service:api"], 0.0).to_record()) for index in range(ENTITIES_PER_RECORD)]
        engine.apply_events(events, PARTITION, offset, origin=offset)
        peak = max(peak, len(engine.store.held))
        if engine.full:
            engine.settle()
            engine.release()
    engine.settle()
    engine.release()
    assert peak <= 512 + ENTITIES_PER_RECORD, f"{peak} decoded states held at once"
    assert len(engine.store.table) == ENTITIES_PER_RECORD * RECORDS  # settled in parts, every state written
