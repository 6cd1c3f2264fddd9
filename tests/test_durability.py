"""What hotpath writes survives a broker: every producer waits for all in-sync replicas and is idempotent,
and the worker's changelog, which holds all correlation state, gets the configured copies and
min.insync.replicas."""

from __future__ import annotations

import aiokafka
import pytest
from confluent_kafka.admin import ConfigResource, ConfigSource, ResourceType
from test_topics import wait_until

from stream.app import create_app
from stream.kafka import producer_config

pytestmark = pytest.mark.kafka


def test_confluent_producers_wait_for_all_replicas_are_idempotent_and_compress(hotpath_settings):
    for compression in ("lz4", "none"):
        config = producer_config(hotpath_settings.model_copy(update={"compression": compression}))
        assert (config["acks"], config["enable.idempotence"], config["compression.type"]) == ("all", True, compression)


def test_the_worker_asks_faust_for_the_configured_copies_of_its_changelog(hotpath_settings):
    durable = hotpath_settings.model_copy(update={"replication_factor": 3, "min_insync_replicas": 2})
    app = create_app(durable).app
    assert app.conf.topic_replication_factor == 3
    assert app.tables["entity-state"].changelog_topic.config == {"min.insync.replicas": "2"}


async def test_the_worker_producer_is_idempotent_and_its_changelog_durable(hotpath_settings, kafka_admin, monkeypatch):
    built: list[dict] = []

    class RecordingProducer(aiokafka.AIOKafkaProducer):
        """The real aiokafka producer, remembering how Faust configured it."""

        def __init__(self, **options):
            built.append(options)
            super().__init__(**options)

    monkeypatch.setattr(aiokafka, "AIOKafkaProducer", RecordingProducer)
    settings = hotpath_settings.model_copy(update={"compression": "zstd"})
    app = create_app(settings).app
    changelog = app.tables["entity-state"].changelog_topic
    await app.producer.start()
    try:
        sent = await app.producer.send(settings.topic_dlq, b"key", b"value", partition=None, timestamp=None,
                                       headers=None)
        assert (await sent).offset == 0  # the broker took a write from the idempotent producer
        await changelog.maybe_declare()
    finally:
        await app.producer.stop()
    [options] = built
    assert (options["acks"], options["enable_idempotence"], options["compression_type"]) == ("all", True, "zstd")

    name = changelog.get_topic_name()
    wait_until(lambda: kafka_admin.list_topics(topic=name, timeout=10).topics[name].error is None)  # KRaft: metadata lags
    resource = ConfigResource(ResourceType.TOPIC, name)
    entry = kafka_admin.describe_configs([resource])[resource].result()["min.insync.replicas"]
    assert (entry.value, entry.source) == ("1", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    partitions = kafka_admin.list_topics(topic=name, timeout=10).topics[name].partitions
    assert {len(partition.replicas) for partition in partitions.values()} == {settings.replication_factor}
