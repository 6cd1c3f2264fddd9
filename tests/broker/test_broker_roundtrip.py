"""Records cross the real broker with both clients hotpath uses, configured from the same Settings."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from brokers import launcher
from paths import ROOT
from roundtrips import RECEIVE_TIMEOUT_S, agent_receives_what_confluent_sends, faust_app, produce_keys, running

from stream.demo.ports import free_port
from stream.kafka.clients import consumer, producer
from stream.kafka.topics import TopicsError, apply_topics
from stream.settings import load_settings


def consume_one(settings, topic: str):
    """The first record on ``topic``, read by a fresh consumer group from the beginning."""
    reader = consumer(settings, group_id=f"roundtrip-{uuid.uuid4().hex[:8]}")
    try:
        reader.subscribe([topic])
        for _ in range(int(RECEIVE_TIMEOUT_S)):
            message = reader.poll(1.0)
            if message is not None:
                assert message.error() is None, message.error()
                return message
        raise AssertionError(f"nothing arrived on {topic} within {RECEIVE_TIMEOUT_S:.0f}s")
    finally:
        reader.close()


def test_confluent_producer_and_consumer_roundtrip(hotpath_settings, make_topic):
    topic = make_topic("roundtrip")
    writer = producer(hotpath_settings)
    writer.produce(topic, key=b"arn:aws:s3:::payments", value=b'{"ok": true}', headers={"source": b"test"})
    assert writer.flush(30) == 0

    message = consume_one(hotpath_settings, topic)
    assert (message.key(), message.value()) == (b"arn:aws:s3:::payments", b'{"ok": true}')
    assert message.headers() == [("source", b"test")]


async def test_a_faust_agent_consumes_a_record_from_the_broker(hotpath_settings, make_topic):
    await agent_receives_what_confluent_sends(hotpath_settings, make_topic("faust-in", partitions=2))


async def test_keys_from_confluent_land_on_the_partitions_faust_chooses(hotpath_settings, make_topic):
    """Without murmur2 on the confluent side, per-entity state would split across workers."""
    keys = [f"arn:aws:s3:::bucket-{n}".encode() for n in range(40)] + [b"service:checkout", b"service:ledger"]
    by_confluent = produce_keys(hotpath_settings, make_topic("copart-confluent", partitions=4), keys)

    app = faust_app(hotpath_settings)
    faust_topic = app.topic(make_topic("copart-faust", partitions=4), key_serializer="raw", value_serializer="raw")
    async with running(app):
        sent = [await faust_topic.send(key=key, value=b"{}") for key in keys]
        by_faust = {key: (await future).partition for key, future in zip(keys, sent, strict=True)}

    assert len(set(by_faust.values())) > 1
    assert by_confluent == by_faust


SASL_USER, SASL_PASSWORD = "hotpath", "hotpath-secret"


@pytest.fixture(scope="module")
def sasl_bootstrap() -> Iterator[str]:
    """A second launcher broker whose only client listener wants SASL/PLAIN (users admin and hotpath)."""
    run_dir = ROOT / ".run" / f"test-kafka-sasl-{uuid.uuid4().hex[:8]}"
    port, controller = free_port(), free_port()
    jaas = ('org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" '
            f'password="admin-secret" user_admin="admin-secret" user_{SASL_USER}="{SASL_PASSWORD}";')
    properties = [
        f"listeners=SASL_PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
        f"advertised.listeners=SASL_PLAINTEXT://127.0.0.1:{port}",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
        "inter.broker.listener.name=SASL_PLAINTEXT",
        "sasl.enabled.mechanisms=PLAIN",
        "sasl.mechanism.inter.broker.protocol=PLAIN",
        f"listener.name.sasl_plaintext.plain.sasl.jaas.config={jaas}",
    ]
    extra = ["--controller-port", str(controller)] + [arg for line in properties for arg in ("--config", line)]
    started = launcher("up", run_dir, port, extra=extra)
    assert started.returncode == 0, started.stderr
    try:
        yield f"127.0.0.1:{port}"
    finally:
        launcher("down", run_dir)
        shutil.rmtree(run_dir, ignore_errors=True)


def sasl_settings(bootstrap: str, password: str, data_dir: Path):
    suffix = uuid.uuid4().hex[:8]
    return load_settings(bootstrap_servers=bootstrap, security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                         sasl_username=SASL_USER, sasl_password=password, app_id=f"hotpath-sasl-{suffix}",
                         topic_findings=f"sasl-{suffix}.findings", data_dir=data_dir)


@pytest.mark.kafka
async def test_sasl_credentials_from_settings_authenticate_both_clients(sasl_bootstrap, tmp_path):
    settings = sasl_settings(sasl_bootstrap, SASL_PASSWORD, tmp_path)
    assert f"created {settings.topic_findings} (4 partitions)" in apply_topics(settings)
    await agent_receives_what_confluent_sends(settings, settings.topic_findings)


@pytest.mark.kafka
def test_a_wrong_password_is_one_line_that_names_the_cause(sasl_bootstrap, tmp_path):
    with pytest.raises(TopicsError) as caught:
        apply_topics(sasl_settings(sasl_bootstrap, "not-the-password", tmp_path))
    message = str(caught.value)
    assert "\n" not in message and "Invalid username or password" in message
    assert "not-the-password" not in message
