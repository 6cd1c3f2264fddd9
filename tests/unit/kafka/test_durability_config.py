"""What the worker asks Faust for the topics it creates: the configured copies, acks from all of them,
min.insync.replicas on the changelog (a cluster of three brokers would be needed to create them)."""

from __future__ import annotations

import faust

from stream.kafka.clients import topic_durability_config
from stream.settings import load_settings
from stream.worker.faust_config import faust_broker_kwargs, faust_durability_kwargs


def test_faust_is_asked_for_the_configured_copies_of_the_topics_it_creates():
    # The worker builds its faust.App from these (tests/faults/test_durability.py checks the producer it
    # gets); a cluster of three brokers is needed to create anything with three copies, so only the
    # configuration is checked here.
    durable = load_settings(replication_factor=3, min_insync_replicas=2)
    app = faust.App("durability-check", **faust_broker_kwargs(durable), **faust_durability_kwargs(durable))
    assert (app.conf.topic_replication_factor, app.conf.producer_acks) == (3, -1)
    table = app.Table("state", extra_topic_configs=topic_durability_config(durable))
    assert table.changelog_topic.config == {"min.insync.replicas": "2"}
