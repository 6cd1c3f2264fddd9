"""Every compression codec a producer may use is readable by every consumer in hotpath.

The shipped Collector and falcosidekick configurations write lz4; other producers pick gzip, snappy
or zstd. The scenario's input records are produced with confluent-kafka at each ``compression.type``
in turn, and a real worker (Faust/aiokafka, itself writing zstd) must decode every one of them into
the scenario's escalations, with nothing dead-lettered. The confluent-kafka consumer that ``hotpath
deliver`` and the readers use decodes each codec as well.
"""

from __future__ import annotations

import json
import re

import pytest
from workers import HotpathProcess, final_states, read_topic, scenario_records

from stream.demo.scenario import build_scenario
from stream.kafka.clients import consumer, producer

pytestmark = pytest.mark.kafka

CODECS = ("gzip", "snappy", "lz4", "zstd")


def produce_by_turns(settings, records) -> None:
    """Produce ``records`` in order, each with the next codec (one record per batch, so each is compressed
    on its own and the order of the stream is kept across the producers)."""
    clients = [producer(settings, compression_type=codec, linger_ms=0) for codec in CODECS]
    for index, (topic, key, value) in enumerate(records):
        client = clients[index % len(CODECS)]
        client.produce(topic, key=key, value=value)
        assert client.flush(30) == 0, f"record {index} not delivered"


def test_the_worker_decodes_input_in_every_codec(hotpath_settings, tmp_path):
    settings = hotpath_settings
    scenario = build_scenario(seed=5, scale=1, minutes=6)
    records = scenario_records(settings, scenario)
    produce_by_turns(settings, records)
    wanted = {uid: ("escalated", priority) for uid, priority in scenario.expected.escalated.items()}

    with HotpathProcess("worker", settings, tmp_path, compression="zstd") as worker:
        worker.wait_ready()
        escalations = read_topic(settings, settings.topic_escalations, timeout=120,
                                 until=lambda found: final_states([value for _, value in found]) == wanted)
        assert final_states([value for _, value in escalations]) == wanted
        status, body = worker.get("/metrics")
    assert status == 200
    read = {topic: int(count) for topic, count in
            re.findall(r'hotpath_records_in_total\{topic="([^"]+)"\} (\d+)', body.decode())}
    produced = {}
    for topic, _, _ in records:
        produced[topic] = produced.get(topic, 0) + 1
    assert read == produced
    assert read_topic(settings, settings.topic_dlq, timeout=3) == []


def test_the_confluent_consumer_reads_every_codec(hotpath_settings):
    settings = hotpath_settings
    for codec in CODECS:
        client = producer(settings, compression_type=codec)
        client.produce(settings.topic_escalations, key=codec.encode(), value=json.dumps({"codec": codec}).encode())
        assert client.flush(30) == 0
    reader = consumer(settings, group_id=f"{settings.app_id}-codecs", enable_auto_commit=False)
    reader.subscribe([settings.topic_escalations])
    seen = {}
    try:
        for _ in range(120):
            message = reader.poll(0.5)
            if message is not None and not message.error():
                seen[message.key().decode()] = json.loads(message.value())["codec"]
            if len(seen) == len(CODECS):
                break
    finally:
        reader.close()
    assert seen == {codec: codec for codec in CODECS}
