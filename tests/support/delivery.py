"""Sinks as the delivery tests configure them, and what each delivery group has not committed yet."""

from __future__ import annotations

from receivers import PagerDutyReceiver

from stream.deliver.lane import lane_group
from stream.kafka import clients as kafka
from stream.settings import Settings


def pagerduty_sink(receiver: PagerDutyReceiver, name: str = "payments-pd", **fields) -> dict:
    return {"name": name, "kind": "pagerduty", "url": receiver.enqueue_url, "min_priority": "P3",
            "secret_env": "PD_ROUTING_KEY", **fields}


def lane_groups(settings: Settings) -> list[str]:
    """The delivery groups of the SIEM lane and of each configured sink."""
    return [lane_group(settings.app_id)] + [lane_group(settings.app_id, sink.name) for sink in settings.sinks]


def uncommitted(settings: Settings, groups: list[str] | None = None) -> dict[tuple[str, int], int]:
    """Per delivery group (all lanes by default) and partition of the escalations topic, records not committed."""
    from confluent_kafka import TopicPartition

    topic = settings.topic_escalations
    behind = {}
    for group in groups or lane_groups(settings):
        consumer = kafka.consumer(settings, group, enable_auto_commit=False)
        try:
            numbers = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            partitions = [TopicPartition(topic, p) for p in numbers]
            committed = {tp.partition: max(tp.offset, 0) for tp in consumer.committed(partitions, timeout=10)}
            ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions}
        finally:
            consumer.close()
        behind.update({(group, p): ends[p] - committed[p] for p in ends if ends[p] != committed[p]})
    return behind
