"""The ``hotpath.entity-events`` record: which partition an entity's events go to, how a batch is cut
into records the broker takes, and what reading one accepts.

An entity's events must land on the partition its state lives on, the one Faust's producer (aiokafka)
gives a record keyed by the entity; tests/broker/test_entity_partitions.py checks the same against
the partitions the live broker reports for records keyed by the entity.
"""

from __future__ import annotations

import tracemalloc

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner

from stream.ingest.entity_events import EntityPartitioner, encode_events, read_entity_events

ENTITIES = [
    "arn:aws:s3:::acme-statements",
    "arn:aws:dynamodb:eu-west-1:111122223333:table/orders",
    "service:payments-api",
    "pod:payments-api-7d9f8b6c5-x2x9q",
    "",
    "ä-ünïcödé-名前",
    "x" * 5000,
] + [f"arn:aws:s3:::bucket-{n}" for n in range(500)]

# Kafka's own test vectors for its murmur2 (clients' UtilsTest): key -> signed 32-bit hash.
KAFKA_MURMUR2 = {
    "21": -973932308,
    "foobar": -790332482,
    "a-little-bit-long-string": -985981536,
    "a-little-bit-longer-string": -1486304829,
    "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    "abc": 479470107,
}


@pytest.mark.parametrize("partitions", [1, 3, 12, 64])
def test_the_partition_is_the_one_faust_gives_a_record_keyed_by_the_entity(partitions):
    faust_producer = DefaultPartitioner()
    every = list(range(partitions))
    partitioner = EntityPartitioner(partitions)

    mine = [partitioner.partition(entity) for entity in ENTITIES]

    assert mine == [faust_producer(entity.encode(), every, every) for entity in ENTITIES]


@pytest.mark.parametrize("key, signed_hash", KAFKA_MURMUR2.items())
def test_the_partition_follows_the_java_clients_murmur2(key, signed_hash):
    assert EntityPartitioner(7).partition(key) == (signed_hash & 0x7FFFFFFF) % 7


def test_split_groups_events_by_partition_in_their_original_order():
    partitioner = EntityPartitioner(4)
    events = [(entity, {"kind": "touch", "n": n}) for n, entity in enumerate(ENTITIES[:60])]

    groups = partitioner.split(events)

    assert sorted(event for group in groups.values() for event in group) == sorted(events)
    for partition, group in groups.items():
        assert {partitioner.partition(entity) for entity, _ in group} == {partition}
        assert [event["n"] for _, event in group] == sorted(event["n"] for _, event in group)


def retained_bytes(max_cached: int, entities: int) -> int:
    """Memory the partitioner still holds after seeing ``entities`` distinct entity ids."""
    tracemalloc.start()
    try:
        partitioner = EntityPartitioner(12, max_cached=max_cached)
        for n in range(entities):
            partitioner.partition(f"arn:aws:s3:::made-up-{n}")
        return tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()


def test_the_cache_of_partitions_is_bounded_and_stays_right_past_its_bound():
    bounded, unbounded = retained_bytes(100, 20_000), retained_bytes(100_000, 20_000)
    assert bounded * 10 < unbounded, (bounded, unbounded)

    partitioner, fresh = EntityPartitioner(12, max_cached=3), EntityPartitioner(12)
    assert [partitioner.partition(e) for e in ENTITIES * 2] == [fresh.partition(e) for e in ENTITIES * 2]


# --- records of at most max_bytes -----------------------------------------------------------------------

def touches(count: int, size: int = 40) -> list[tuple[str, dict]]:
    return [(f"arn:aws:s3:::bucket-{n:04d}", {"kind": "touch", "pad": "p" * size}) for n in range(count)]


def test_a_batch_exactly_at_the_bound_stays_one_record():
    events = touches(10)
    whole = orjson.dumps(events)
    assert encode_events(events, len(whole)) == ([whole], [])


def test_each_record_is_within_the_bound_and_as_full_as_the_next_event_allows():
    events = touches(200)
    one = len(orjson.dumps(events[0]))
    bound = 10 * one + 11  # ten events, their nine commas, the brackets: ten per record exactly

    records, too_large = encode_events(events, bound)

    assert too_large == [] and len(records) == 20
    assert all(len(record) <= bound for record in records)
    assert [pair for record in records for pair in read_entity_events(record)] == [list(e) for e in events]


def test_events_no_record_can_hold_come_back_and_the_others_keep_their_order():
    events = touches(6)
    huge = ("arn:aws:s3:::huge", {"kind": "finding", "title": "x" * 1000})
    bound = 300

    records, too_large = encode_events([*events[:3], huge, *events[3:]], bound)

    assert too_large == [huge]
    assert [pair for record in records for pair in read_entity_events(record)] == [list(e) for e in events]


# --- reading a record back ------------------------------------------------------------------------------

def test_reading_gives_the_pairs_and_none_for_a_tick():
    events = touches(3)
    assert read_entity_events(orjson.dumps(events)) == [list(e) for e in events]
    assert read_entity_events(orjson.dumps({"kind": "tick"})) is None


@pytest.mark.parametrize("value", [
    None,
    b"",
    b"{oops",
    b"\xff\xfe",
    b'{"kind": "tock"}',
    b'"text"',
    b'[["only an entity"]]',
    b'[["arn:aws:s3:::a", {}, "extra"]]',
    b'[[42, {"kind": "touch"}]]',
    b'[["arn:aws:s3:::a", ["not", "an", "object"]]]',
    b'[["arn:aws:s3:::a", {}], "stray"]',
    b"[" * 5000 + b"]" * 5000,
], ids=["none", "empty", "not-json", "not-utf8", "other-object", "string", "short-pair", "long-pair",
        "number-entity", "list-event", "stray-item", "deep-nesting"])
def test_a_hostile_value_is_a_value_error_with_the_reason(value):
    with pytest.raises(ValueError, match="not JSON|expected a JSON array of \\[entity id, event object\\] pairs"):
        read_entity_events(value)
