"""Brokers of a test's own, and changes to the session broker's topics."""

from __future__ import annotations

from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from stream.kafka.topics import BrokerAdmin


def allow_large_records(settings, topic: str, size: int) -> None:
    """Raise one topic's ``max.message.bytes`` so a record of ``size`` bytes is accepted by the broker."""
    entry = ConfigEntry("max.message.bytes", str(size), incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[entry])
    for future in BrokerAdmin(settings).client.incremental_alter_configs([resource]).values():
        future.result()
