"""The ceiling: read the trace topic with confluent-kafka and parse each message with protobuf, nothing else.

No Python consumer of this topic can go faster on this machine: it is the fetch and the C parse
that every consumer pays before doing anything with a span.
"""

from __future__ import annotations

import time
import uuid

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from stream.kafka.clients import consumer
from stream.settings import Settings

BATCH = 500


def measure(settings: Settings, messages: int, spans: int) -> float:
    """Spans per second reading ``messages`` records (holding ``spans`` spans) from the start of the traces topic."""
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    client = consumer(settings, group_id=f"bench-ceiling-{uuid.uuid4().hex[:8]}", enable_auto_commit=False,
                      max_partition_fetch_bytes=16 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024)
    topic = settings.topic_traces
    partitions = client.list_topics(topic, timeout=10).topics[topic].partitions
    parse = ExportTraceServiceRequest.FromString
    try:
        started = time.monotonic()
        client.assign([TopicPartition(topic, partition, OFFSET_BEGINNING) for partition in partitions])
        seen = 0
        while seen < messages:
            # consume() waits until it has as many as asked for: never ask for more than are left.
            for message in client.consume(min(BATCH, messages - seen), timeout=1.0):
                if message.error() is None:
                    parse(message.value())
                    seen += 1
        return spans / (time.monotonic() - started)
    finally:
        client.close()
