"""EntityPartitioner against the live broker: records keyed by an entity, sent by confluent-kafka with
``murmur2_random`` (ingest's producer) and by aiokafka (Faust's), land on the partition it names.

An entity's events and its state must meet on one partition of ``hotpath.entity-events``; if the two
clients and the partitioner disagreed, a worker would judge an entity without its state.
"""

from __future__ import annotations

import time

from aiokafka import AIOKafkaProducer
from confluent_kafka import Consumer, Producer

from stream.ingest.entity_events import EntityPartitioner

PARTITIONS = 12
ENTITIES = [f"arn:aws:s3:::bucket-{n}" for n in range(150)] + [
    "service:payments-api", "pod:payments-api-7d9f8b6c5-x2x9q", "ä-ünïcödé-名前", "x" * 3000]


def read_partitions(bootstrap: str, topic: str, count: int) -> dict[tuple[bytes, bytes], int]:
    """(key, value) -> the partition the broker stored it on, for the first ``count`` records of ``topic``."""
    client = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-partitions-{topic}",
                       "auto.offset.reset": "earliest", "enable.auto.commit": False})
    client.subscribe([topic])
    stored: dict[tuple[bytes, bytes], int] = {}
    deadline = time.monotonic() + 60
    try:
        while len(stored) < count and time.monotonic() < deadline:
            for message in client.consume(500, 0.5):
                if message.error() is None:
                    stored[(message.key(), message.value())] = message.partition()
    finally:
        client.close()
    return stored


async def test_records_keyed_by_an_entity_land_on_the_partition_the_partitioner_names(kafka_bootstrap, make_topic):
    topic = make_topic("entity-partitions", partitions=PARTITIONS)
    ingest = Producer({"bootstrap.servers": kafka_bootstrap, "partitioner": "murmur2_random"})
    for entity in ENTITIES:
        ingest.produce(topic, key=entity.encode(), value=b"confluent-kafka")
    assert ingest.flush(30) == 0
    faust = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await faust.start()
    try:
        for entity in ENTITIES:
            await faust.send_and_wait(topic, key=entity.encode(), value=b"aiokafka")
    finally:
        await faust.stop()

    stored = read_partitions(kafka_bootstrap, topic, 2 * len(ENTITIES))

    partitioner = EntityPartitioner(PARTITIONS)
    expected = {(entity.encode(), client): partitioner.partition(entity)
                for entity in ENTITIES for client in (b"confluent-kafka", b"aiokafka")}
    assert stored == expected
    assert len(set(expected.values())) == PARTITIONS  # the entities spread: the check covers every partition
