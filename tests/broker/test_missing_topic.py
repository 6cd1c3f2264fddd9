"""A command started against topics that do not exist says which, and what to do, on the live broker."""

from __future__ import annotations

import pytest

from stream.demo.ports import free_port
from stream.kafka.connect import KafkaUnavailable, check_brokers


def test_a_missing_topic_is_named_with_what_to_do(hotpath_settings):
    settings = hotpath_settings.model_copy(update={"kafka_connect_timeout_s": 10.0})

    with pytest.raises(KafkaUnavailable,
                       match=r"^topics missing on .*: nowhere-[0-9a-f]+; create them with `hotpath topics apply`$"):
        check_brokers(settings, [settings.topic_escalations, f"nowhere-{free_port():x}"])
