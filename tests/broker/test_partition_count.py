"""The worker and a raised partition count of ``hotpath.entity-events``, on the live broker."""

from __future__ import annotations

import pytest
from brokers import ADMIN_TIMEOUT_S, wait_for_topic
from confluent_kafka.admin import NewTopic

from stream.settings import ConfigError
from stream.worker.app import entity_partitions, state_changelog


def make_changelog(kafka_admin, settings, partitions: int) -> None:
    """The entity state's changelog as an earlier worker of the same app id left it."""
    name = state_changelog(settings)
    kafka_admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)],
                              operation_timeout=ADMIN_TIMEOUT_S)[name].result()
    wait_for_topic(kafka_admin, name, partitions)


def test_a_worker_shares_the_entity_topics_twelve_partitions_with_its_state(hotpath_settings, kafka_admin):
    assert entity_partitions(hotpath_settings) == 12
    make_changelog(kafka_admin, hotpath_settings, 12)
    assert entity_partitions(hotpath_settings) == 12


def test_a_state_changelog_left_with_fewer_partitions_stops_the_worker_with_one_line(hotpath_settings, kafka_admin):
    """The entity topic was raised from 4 to 12 under existing state: the worker must not start writing states to
    changelog partitions that do not exist (nor lose the entities that moved)."""
    make_changelog(kafka_admin, hotpath_settings, 4)
    with pytest.raises(ConfigError, match=r"has 12 partitions but the entity state's changelog .* has 4: "):
        entity_partitions(hotpath_settings)
