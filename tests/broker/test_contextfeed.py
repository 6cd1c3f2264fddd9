"""The shared context feed: one bad record costs one record, and a feed that stops makes the worker unready.

The feed reads the real context and asset topics on the live broker (or a broker that is gone); the
health check is the worker's own ``readiness`` over an app built by ``create_app``.
"""

from __future__ import annotations

import asyncio

import orjson
import pytest
from waiting import run_loop_until

from stream.demo.ports import free_port
from stream.entities.context import Context
from stream.kafka.clients import producer
from stream.metrics import Metrics
from stream.settings import Settings
from stream.worker.app import create_app
from stream.worker.contextfeed import ContextFeed
from stream.worker.policyfeed import PolicyFeed
from stream.worker.web import readiness


def asset(number: int) -> tuple[bytes, bytes]:
    asset_id = f"arn:aws:s3:::ledger-exports-{number}"
    return asset_id.encode(), orjson.dumps({"id": asset_id, "aliases": [f"ledger-exports-{number}"],
                                            "tags": {"criticality": "high"}})


def produce(settings: Settings, records: list[tuple[str, bytes | None, bytes | None]]) -> None:
    client = producer(settings)
    for topic, key, value in records:
        client.produce(topic, key=key, value=value)
    assert client.flush(30) == 0


def test_a_tombstone_with_a_non_utf8_key_costs_that_record_not_the_rest_of_its_batch(hotpath_settings):
    settings = hotpath_settings
    edge_key, edge_value = Context.edge_fact("service:edge", "service:ledger", 1_772_446_800.0)
    records = [(settings.topic_assets, *asset(number)) for number in range(100)]
    records.insert(10, (settings.topic_assets, b"\xff\xfe not text", None))  # a tombstone no id can match
    records.insert(20, (settings.topic_context, b"\xff\xfe not text", b'{"last_seen": 1}'))
    records.append((settings.topic_context, edge_key.encode(), orjson.dumps(edge_value)))
    produce(settings, records)
    context = Context()
    metrics = Metrics()
    feed = ContextFeed(settings, context, metrics.feed_records)
    loop = asyncio.new_event_loop()
    feed.start(loop)
    try:
        run_loop_until(loop, lambda: feed.caught_up.is_set() and context.size()["assets"] == 100
                       and context.size()["edges"] == 1, "every asset and the edge fact are applied")
    finally:
        feed.stop()
        loop.close()

    counted = {outcome: metrics.registry.get_sample_value("hotpath_feed_records_total",
                                                          {"feed": "context", "outcome": outcome})
               for outcome in ("applied", "skipped")}
    assert (counted, feed.failure) == ({"applied": 101, "skipped": 2}, None)  # both records with a non-text key


@pytest.mark.parametrize(("attribute", "build", "what"), [
    ("feed", lambda settings, hotpath: ContextFeed(settings, hotpath.context, hotpath.metrics.feed_records),
     "the shared context"),
    ("policy_feed", lambda settings, hotpath: PolicyFeed(settings, hotpath.metrics.feed_records),
     "the published policy"),
])
def test_a_feed_that_stopped_makes_the_worker_unready_and_says_why(hotpath_settings, attribute, build, what):
    hotpath = create_app(hotpath_settings)
    unreachable = hotpath_settings.model_copy(update={"bootstrap_servers": f"127.0.0.1:{free_port()}"})
    feed = build(unreachable, hotpath)  # its broker is gone: nothing listens there
    setattr(hotpath, attribute, feed)
    loop = asyncio.new_event_loop()
    feed.start(loop)
    try:
        run_loop_until(loop, lambda: feed.failure is not None, "the feed gives up", timeout_s=90)
    finally:
        feed.stop()
        loop.close()

    ready, why = readiness(hotpath)
    assert not ready
    assert why.startswith(f"{what} is no longer read: KafkaException") and "_TRANSPORT" in why, why
