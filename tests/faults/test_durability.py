"""What hotpath writes survives a broker: every producer waits for all in-sync replicas and is idempotent,
and the worker's changelog, which holds all correlation state, gets the configured copies and
min.insync.replicas."""

from __future__ import annotations

import subprocess
import sys

import aiokafka
import pytest
from confluent_kafka.admin import ConfigResource, ConfigSource, ResourceType
from waiting import wait_until
from workers import ROOT, settings_env

from stream.kafka.clients import (
    producer_config,
)
from stream.sources.aws.cursor import cursor_topic, ensure_compacted_topic
from stream.worker.app import create_app

pytestmark = pytest.mark.kafka


def test_confluent_producers_wait_for_all_replicas_are_idempotent_and_compress(hotpath_settings):
    for compression in ("lz4", "none"):
        config = producer_config(hotpath_settings.model_copy(update={"compression": compression}))
        assert (config["acks"], config["enable.idempotence"], config["compression.type"]) == ("all", True, compression)


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
    wait_until(lambda: kafka_admin.list_topics(topic=name, timeout=10).topics[name].error is None,
               "the topic's metadata is there")  # KRaft: metadata lags
    resource = ConfigResource(ResourceType.TOPIC, name)
    entry = kafka_admin.describe_configs([resource])[resource].result()["min.insync.replicas"]
    assert (entry.value, entry.source) == ("1", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    partitions = kafka_admin.list_topics(topic=name, timeout=10).topics[name].partitions
    assert {len(partition.replicas) for partition in partitions.values()} == {settings.replication_factor}


def test_the_worker_refuses_more_copies_than_brokers_in_one_line(hotpath_settings, tmp_path):
    env = settings_env(hotpath_settings, replication_factor=2, data_dir=str(tmp_path / "worker"))
    result = subprocess.run([sys.executable, "-m", "stream.commands.main", "worker"], capture_output=True, text=True,
                            env=env, cwd=ROOT, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"hotpath worker: HOTPATH_REPLICATION_FACTOR is 2, but the cluster at {hotpath_settings.bootstrap_servers} "
        f"has 1 broker: lower the setting or add brokers"]


def test_the_aws_cursor_topic_is_compacted_and_as_durable_as_the_declared_ones(hotpath_settings, kafka_admin):
    topic = cursor_topic(hotpath_settings)  # starts with the app id: the fixture deletes it
    ensure_compacted_topic(hotpath_settings, topic)
    resource = ConfigResource(ResourceType.TOPIC, topic)
    configs = kafka_admin.describe_configs([resource])[resource].result()
    assert configs["cleanup.policy"].value == "compact"
    entry = configs["min.insync.replicas"]
    assert (entry.value, entry.source) == ("1", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
