"""Brokers of a test's own (the project's launcher, extra listeners), and topics on the session's broker:
unique names, creating, waiting for, deleting them, raising a topic's record size."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType
from paths import ROOT
from workers import free_port

from stream.kafka.topics import TOPIC_SETTINGS, BrokerAdmin
from stream.settings import Settings, load_settings

LAUNCHER = ROOT / "deploy" / "kafka" / "launcher.py"
TEST_RUN_PREFIX = "test-kafka-"
# A pinned Confluent image testcontainers' KafkaContainer knows how to start in KRaft mode.
TESTCONTAINERS_IMAGE = os.environ.get("HOTPATH_TEST_KAFKA_IMAGE", "confluentinc/cp-kafka:7.9.0")
ADMIN_TIMEOUT_S = 30.0
# The broker's TLS alert reaches librdkafka as a transport error (TLS 1.3: the broker checks the client's
# certificate after the client has finished its side of the handshake), worded like an unreachable broker's.
NO_CLIENT_CERTIFICATE = "requires a client certificate; set HOTPATH_SSL_CERT_FILE and HOTPATH_SSL_KEY_FILE"


def allow_large_records(settings, topic: str, size: int) -> None:
    """Raise one topic's ``max.message.bytes`` so a record of ``size`` bytes is accepted by the broker."""
    entry = ConfigEntry("max.message.bytes", str(size), incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[entry])
    for future in BrokerAdmin(settings).client.incremental_alter_configs([resource]).values():
        future.result()


def oauth_settings(bootstrap: str, data_dir: Path, **sasl) -> Settings:
    """Settings on the OAUTHBEARER listener with every topic and the app id unique to the test."""
    suffix = unique_suffix()
    return load_settings(
        bootstrap_servers=bootstrap, security_protocol="SASL_PLAINTEXT", sasl_mechanism="OAUTHBEARER",
        app_id=f"hotpath-oauth-{suffix}", data_dir=data_dir, web_port=free_port(),
        **{name: f"o{suffix}-{Settings.model_fields[name].default}" for name in TOPIC_SETTINGS}, **sasl,
    )


def docker_answers() -> bool:
    """True when a Docker engine answers a ping within a second; silent otherwise."""
    host = os.environ.get("DOCKER_HOST", "")
    if not host and not Path("/var/run/docker.sock").exists():
        return False
    try:
        import docker

        client = docker.from_env(timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def sweep_abandoned_run_dirs(run_root: Path) -> None:
    """Remove run folders of earlier sessions whose broker is gone (a killed pytest leaves them).

    Folders with a live broker may belong to a session running right now in the same checkout.
    """
    for run_dir in run_root.glob(f"{TEST_RUN_PREFIX}*"):
        try:
            pid = int((run_dir / "kafka.pid").read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            shutil.rmtree(run_dir, ignore_errors=True)


def launcher(command: str, run_dir: Path, port: int | None = None,
             extra: list[str] | tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run ``deploy/kafka/launcher.py COMMAND`` on a given run folder (and port)."""
    args = [sys.executable, str(LAUNCHER), command, "--run-dir", str(run_dir), *extra]
    if port is not None:
        args += ["--port", str(port)]
    return subprocess.run(args, capture_output=True, text=True, timeout=600)


@contextmanager
def own_broker(name: str, port: int, controller_port: int, properties: list[str]) -> Iterator[Path]:
    """A launcher broker of a test's own, with extra ``server.properties`` lines (listeners, security),
    on ``port`` (which must speak plain Kafka: the launcher probes it); stopped and removed after."""
    run_dir = ROOT / ".run" / f"{TEST_RUN_PREFIX}{name}-{unique_suffix()}"
    extra = ["--controller-port", str(controller_port)] + [arg for line in properties for arg in ("--config", line)]
    started = launcher("up", run_dir, port, extra=extra)
    if started.returncode != 0:
        pytest.fail(f"could not start the {name} broker: {(started.stderr or started.stdout).strip()}", pytrace=False)
    try:
        yield run_dir
    finally:
        launcher("down", run_dir)
        shutil.rmtree(run_dir, ignore_errors=True)


def unique_suffix() -> str:
    """A random suffix that makes a topic, app id or run folder the test's own."""
    return uuid.uuid4().hex[:10]


def delete_topics(client, names: list[str]) -> None:
    """Best-effort clean-up, so a long-lived external broker does not fill with test topics."""
    if not names:
        return
    for future in client.delete_topics(names, operation_timeout=ADMIN_TIMEOUT_S).values():
        try:
            future.result()
        except Exception:
            pass


def wait_for_topic(client, name: str, partitions: int) -> None:
    deadline = time.monotonic() + ADMIN_TIMEOUT_S
    while time.monotonic() < deadline:
        topic = client.list_topics(topic=name, timeout=5).topics.get(name)
        if topic is not None and topic.error is None and len(topic.partitions) == partitions:
            return
        time.sleep(0.05)
    raise TimeoutError(f"topic {name} not visible with {partitions} partitions after {ADMIN_TIMEOUT_S:.0f}s")

