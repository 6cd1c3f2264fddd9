"""Shared fixtures: one real Kafka broker per test session, and unique topics per test.

The broker comes from, in order: ``KAFKA_BOOTSTRAP_SERVERS``; a testcontainers Kafka when a Docker
engine answers; the project's own launcher (``deploy/kafka/launcher.py``) on a free port with a
run folder under ``.run/``, stopped at the end of the session. Every test gets its own topic names
and app id, so tests never see each other's records and can share the one broker.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from brokers import (
    ADMIN_TIMEOUT_S,
    LAUNCHER,
    TEST_RUN_PREFIX,
    TESTCONTAINERS_IMAGE,
    delete_topics,
    docker_answers,
    launcher,
    sweep_abandoned_run_dirs,
    unique_suffix,
    wait_for_topic,
)
from paths import ROOT
from workers import TEST_DATA_MAX_AGE_S

from stream.demo.ports import free_port
from stream.kafka.topics import TOPIC_SETTINGS, apply_topics
from stream.settings import Settings, load_settings


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that needs the broker is a ``kafka`` test, so ``-m "not kafka"`` runs without one."""
    for item in items:
        if "kafka_bootstrap" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.kafka)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``host:port`` of a live Apache Kafka broker for the whole session."""
    given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if given:
        yield given
        return
    if docker_answers():
        from testcontainers.community.kafka import KafkaContainer

        with KafkaContainer(TESTCONTAINERS_IMAGE).with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    run_root = ROOT / ".run"
    sweep_abandoned_run_dirs(run_root)
    run_dir = run_root / f"{TEST_RUN_PREFIX}{uuid.uuid4().hex[:8]}"
    port = free_port()
    started = launcher("up", run_dir, port, extra=["--controller-port", str(free_port())])
    if started.returncode != 0:
        pytest.fail(f"could not start Kafka with {LAUNCHER.name}: {(started.stderr or started.stdout).strip()}",
                    pytrace=False)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        launcher("down", run_dir)
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def kafka_admin(kafka_bootstrap: str):
    """One AdminClient for the session's broker."""
    from stream.kafka.clients import admin

    return admin(load_settings(bootstrap_servers=kafka_bootstrap))


@pytest.fixture
def make_topic(kafka_admin) -> Iterator[Callable[..., str]]:
    """``make_topic(base, partitions=1, config=None)`` creates a uniquely named topic and returns its name."""
    from confluent_kafka.admin import NewTopic

    created: list[str] = []

    def create(base: str, partitions: int = 1, config: dict[str, str] | None = None) -> str:
        name = f"{base}-{unique_suffix()}"
        new = NewTopic(name, num_partitions=partitions, replication_factor=1, config=dict(config or {}))
        kafka_admin.create_topics([new], operation_timeout=ADMIN_TIMEOUT_S)[name].result()
        created.append(name)
        wait_for_topic(kafka_admin, name, partitions)
        return name

    yield create
    delete_topics(kafka_admin, created)


@pytest.fixture
def hotpath_settings(kafka_bootstrap: str, kafka_admin, tmp_path: Path) -> Iterator[Settings]:
    """Settings on the live broker with every ``topic_*`` uniquely named and created from topics.yaml, and a
    past bound on event time wide enough for the tests' dated data (see workers.TEST_DATA_MAX_AGE_S)."""
    suffix = unique_suffix()
    prefix = f"t{suffix}-"
    defaults = Settings.model_fields
    settings = load_settings(
        bootstrap_servers=kafka_bootstrap,
        app_id=f"hotpath-test-{suffix}",
        data_dir=tmp_path / "worker",
        web_port=free_port(),
        max_event_age_s=TEST_DATA_MAX_AGE_S,
        **{name: prefix + defaults[name].default for name in TOPIC_SETTINGS},
    )
    apply_topics(settings)
    yield settings
    # The worker's own topics (changelogs, repartitions) start with its app id.
    leftovers = [name for name in kafka_admin.list_topics(timeout=10).topics
                 if name.startswith((prefix, settings.app_id))]
    delete_topics(kafka_admin, leftovers)
