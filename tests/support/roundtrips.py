"""What every way of reaching a broker must carry: a record from confluent-kafka to a Faust agent on the
partition the producer reported, and the scenario through ``hotpath worker`` to its expected escalations."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from pathlib import Path

import faust
from workers import HotpathProcess, final_states, publish_scenario, read_topic

from stream.demo.scenario import build_scenario
from stream.kafka.clients import producer
from stream.kafka.topics import apply_topics
from stream.settings import Settings
from stream.worker.faust_config import faust_broker_kwargs

RECEIVE_TIMEOUT_S = 60.0


def produce_keys(settings, topic: str, keys: list[bytes]) -> dict[bytes, int]:
    """Produce one record per key with hotpath's producer; returns the partition each key landed on."""
    landed: dict[bytes, int] = {}

    def delivered(err, message):
        assert err is None, err
        landed[message.key()] = message.partition()

    writer = producer(settings)
    for key in keys:
        writer.produce(topic, key=key, value=b"{}", on_delivery=delivered)
    assert writer.flush(30) == 0
    return landed


@asynccontextmanager
async def running(app: faust.App):
    """A Faust app started in this event loop (what a Worker does, minus signals and logging)."""
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


def faust_app(settings) -> faust.App:
    """A Faust app on ``settings``' broker, with in-memory tables and no web server."""
    return faust.App(settings.app_id, **faust_broker_kwargs(settings), store="memory://",
                     web_enabled=False, datadir=str(settings.data_dir))


async def agent_receives_what_confluent_sends(settings, topic_name: str) -> None:
    """Start a Faust agent on ``topic_name``, produce one keyed record with confluent-kafka, and check
    the agent got it from the partition the producer reported."""
    app = faust_app(settings)
    topic = app.topic(topic_name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    received: asyncio.Queue = asyncio.Queue()

    @app.agent(topic)
    async def collect(stream):
        async for event in stream.events():
            await received.put((event.key, event.value, event.message.partition))

    async with running(app):
        landed = produce_keys(settings, topic_name, [b"service:checkout"])
        key, value, partition = await asyncio.wait_for(received.get(), RECEIVE_TIMEOUT_S)

    assert (key, value) == (b"service:checkout", b"{}")
    assert partition == landed[b"service:checkout"]


def worker_escalates_the_scenario(settings: Settings, tmp_path: Path) -> None:
    """Topics, the scenario's input and ``hotpath worker`` on ``settings``' cluster: the expected escalations."""
    assert f"created {settings.topic_escalations} (4 partitions)" in apply_topics(settings)
    scenario = build_scenario(seed=11, scale=1, minutes=6)
    publish_scenario(settings, scenario)
    wanted = {uid: ("escalated", priority) for uid, priority in scenario.expected.escalated.items()}

    with HotpathProcess("worker", settings, tmp_path) as worker:
        worker.wait_ready()
        records = read_topic(settings, settings.topic_escalations,
                             until=lambda records: final_states([value for _, value in records]) == wanted,
                             timeout=120)

    assert final_states([value for _, value in records]) == wanted
