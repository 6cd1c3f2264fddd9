"""A worker reads the shared topics (hotpath.assets, hotpath.context, hotpath.policy) to their end before it calls
itself ready. Their end must be reachable whoever wrote them: a producer writing in transactions leaves a commit
marker as each partition's last offset, and retention can empty a partition; neither may keep a worker unready."""

from __future__ import annotations

import threading

import pytest
from confluent_kafka import TopicPartition

from stream.kafka.clients import producer
from stream.kafka.wholetopic import WholeTopics
from stream.settings import load_settings


def read_until_caught_up(settings, topics, most_batches: int = 100) -> list[bytes]:
    """The values read once the reader says it has caught up (fails if it never does)."""
    stop, values = threading.Event(), []
    for index, (batch, caught_up) in enumerate(WholeTopics(settings, topics).batches(stop)):
        values += [value for *_, value in batch]
        if caught_up:
            stop.set()
        assert index < most_batches, f"never caught up; read {values}"
    return values


@pytest.mark.kafka
def test_topics_ending_in_a_transaction_marker_or_emptied_by_retention_are_read_to_their_end(kafka_bootstrap,
                                                                                            kafka_admin, make_topic):
    settings = load_settings(bootstrap_servers=kafka_bootstrap)
    written_in_transactions, emptied = make_topic("assets-transactional"), make_topic("context-emptied")
    writer = producer(settings, transactional_id=f"{written_in_transactions}-writer")
    writer.init_transactions(30)
    for index in range(3):
        writer.begin_transaction()
        writer.produce(written_in_transactions, value=b"asset-%d" % index)
        writer.commit_transaction(30)
    plain = producer(settings)
    plain.produce(emptied, value=b"expired")
    plain.flush(30)
    deleted = kafka_admin.delete_records([TopicPartition(emptied, 0, 1)])
    for future in deleted.values():
        future.result()

    assert read_until_caught_up(settings, [written_in_transactions, emptied]) == [b"asset-0", b"asset-1", b"asset-2"]
