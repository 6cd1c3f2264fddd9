"""``hotpath topics apply`` against the real broker: creates, is idempotent, raises partitions, repairs drift."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from paths import ROOT

from stream.kafka.clients import admin
from stream.kafka.topics import (
    TOPIC_SETTINGS,
    ObservedTopic,
    apply_topics,
    desired_topics,
    load_declarations,
    plan,
    plan_topics,
)
from stream.settings import ConfigError, load_settings

TOPICS_DIR = ROOT / "topics"


def broker_view(settings, name: str) -> tuple[int, dict[str, str]]:
    """(partition count, config) of one topic as the broker reports it."""
    from confluent_kafka.admin import ConfigResource, ResourceType

    client = admin(settings)
    partitions = len(client.list_topics(topic=name, timeout=10).topics[name].partitions)
    resource = ConfigResource(ResourceType.TOPIC, name)
    entries = client.describe_configs([resource])[resource].result()
    return partitions, {key: entry.value for key, entry in entries.items()}


def wait_until(condition, timeout_s: float = 30.0) -> None:
    """Config changes reach the broker's metadata cache asynchronously (KRaft)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def copy_declarations(tmp_path: Path) -> Path:
    target = tmp_path / "topics"
    shutil.copytree(TOPICS_DIR, target)
    return target


def edit_declaration(topics_dir: Path, topic_id: str, **changes) -> None:
    path = topics_dir / "topics.yaml"
    catalog = yaml.safe_load(path.read_text())
    for topic in catalog["topics"]:
        if topic["id"] == topic_id:
            for key, value in changes.items():
                if key == "config":
                    topic["config"].update(value)
                else:
                    topic[key] = value
    path.write_text(yaml.safe_dump(catalog))


def test_every_topic_setting_is_declared_once_and_outputs_name_their_schema():
    declarations = load_declarations(TOPICS_DIR)
    assert sorted(d.setting for d in declarations) == sorted(TOPIC_SETTINGS)
    for declaration in declarations:
        if declaration.value.json_schema:
            schema = json.loads((TOPICS_DIR / declaration.value.json_schema).read_text())
            assert schema.get("$schema") or schema.get("type"), declaration.value.json_schema


def test_declared_layout_lets_twelve_workers_share_the_traces_and_the_entity_state():
    by_id = {d.id: d for d in load_declarations(TOPICS_DIR)}
    assert by_id["traces"].partitions >= 12  # the workers that decode
    assert by_id["entity-events"].partitions >= 12  # the workers that hold state (the table shares its count)
    assert by_id["context"].partitions == 1
    assert by_id["assets"].config["cleanup.policy"] == "compact"
    assert by_id["context"].config["cleanup.policy"] == "compact,delete"  # stale facts age out
    assert by_id["traces"].value.formats == ["otlp_proto", "otlp_json"]


def test_apply_creates_every_topic_and_a_second_apply_changes_nothing(kafka_bootstrap):
    prefix = f"apply-{uuid.uuid4().hex[:8]}-"
    settings = load_settings(bootstrap_servers=kafka_bootstrap)
    first = apply_topics(settings, prefix=prefix)
    assert len(first) == len(TOPIC_SETTINGS)
    assert f"created {prefix}hotpath.findings (4 partitions)" in first
    assert f"created {prefix}hotpath.context (1 partition)" in first
    partitions, config = broker_view(settings, f"{prefix}{settings.topic_assets}")
    assert partitions == 4 and config["cleanup.policy"] == "compact"
    partitions, config = broker_view(settings, f"{prefix}{settings.topic_traces}")
    assert config["retention.ms"] == "86400000"

    assert apply_topics(settings, prefix=prefix) == []
    assert len(plan_topics(settings, prefix=prefix).unchanged) == len(TOPIC_SETTINGS)


def test_dry_run_reports_but_creates_nothing(kafka_bootstrap):
    prefix = f"dry-{uuid.uuid4().hex[:8]}-"
    settings = load_settings(bootstrap_servers=kafka_bootstrap)
    lines = apply_topics(settings, prefix=prefix, dry_run=True)
    assert f"would create {prefix}{settings.topic_findings} (4 partitions)" in lines
    assert not [t for t in admin(settings).list_topics(timeout=10).topics if t.startswith(prefix)]


def test_more_partitions_in_the_declaration_are_applied_and_fewer_are_only_reported(hotpath_settings, tmp_path):
    topics_dir = copy_declarations(tmp_path)
    edit_declaration(topics_dir, "alerts", partitions=6)
    edit_declaration(topics_dir, "findings", partitions=2)
    settings = hotpath_settings.model_copy(update={"topics_dir": topics_dir})

    plan = plan_topics(settings)
    assert any(settings.topic_findings in notice and "cannot remove partitions" in notice for notice in plan.notices)
    assert apply_topics(settings) == [f"raised partitions of {settings.topic_alerts} from 4 to 6"]
    assert broker_view(settings, settings.topic_alerts)[0] == 6
    assert broker_view(settings, settings.topic_findings)[0] == 4


def test_config_drift_on_the_broker_is_repaired(hotpath_settings):
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

    settings = hotpath_settings
    drifted = ConfigResource(ResourceType.TOPIC, settings.topic_escalations, incremental_configs=[
        ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)])
    client = admin(settings)
    client.incremental_alter_configs([drifted])[drifted].result()
    wait_until(lambda: broker_view(settings, settings.topic_escalations)[1]["retention.ms"] == "1000")

    assert apply_topics(settings) == [
        f"updated config of {settings.topic_escalations}: retention.ms 1000 -> 604800000"]
    assert broker_view(settings, settings.topic_escalations)[1]["retention.ms"] == "604800000"
    assert apply_topics(settings) == []


def test_a_changed_declared_config_is_applied(hotpath_settings, tmp_path):
    topics_dir = copy_declarations(tmp_path)
    edit_declaration(topics_dir, "dlq", config={"retention.ms": 1209600000})
    settings = hotpath_settings.model_copy(update={"topics_dir": topics_dir})
    assert apply_topics(settings) == [f"updated config of {settings.topic_dlq}: retention.ms 604800000 -> 1209600000"]


@pytest.mark.parametrize(("change", "message"), [
    ({"partitions": 0}, "partitions: Input should be greater than or equal to 1"),
    ({"setting": "topic_nonsense"}, "'topic_nonsense' is not one of the Settings fields"),
    ({"schema_dropped": True}, "must name its JSON Schema"),
])
def test_a_bad_declaration_is_one_line_naming_the_file_and_field(tmp_path, change, message):
    topics_dir = copy_declarations(tmp_path)
    if change.pop("schema_dropped", False):
        catalog = yaml.safe_load((topics_dir / "topics.yaml").read_text())
        del next(t for t in catalog["topics"] if t["id"] == "escalations")["value"]["schema"]
        (topics_dir / "topics.yaml").write_text(yaml.safe_dump(catalog))
    else:
        edit_declaration(topics_dir, "escalations", **change)
    with pytest.raises(ConfigError) as caught:
        load_declarations(topics_dir)
    text = str(caught.value)
    assert "\n" not in text and str(topics_dir / "topics.yaml") in text and message in text


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stream.commands.main", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, cwd=ROOT, timeout=60)


def test_cli_prints_what_it_changed_then_unchanged(kafka_bootstrap):
    prefix = f"cli-{uuid.uuid4().hex[:8]}-"
    env = {"HOTPATH_BOOTSTRAP_SERVERS": kafka_bootstrap}
    first = run_cli("topics", "apply", "--prefix", prefix, env=env)
    assert first.returncode == 0, first.stderr
    assert f"created {prefix}hotpath.findings (4 partitions)" in first.stdout.splitlines()
    assert first.stdout.splitlines()[-1] == "unchanged: 0 topics"
    second = run_cli("topics", "apply", "--prefix", prefix, env=env)
    assert second.stdout.splitlines() == [f"unchanged: {len(TOPIC_SETTINGS)} topics"]


def test_cli_without_a_broker_says_so_in_one_line():
    with socket_closed_port() as port:
        result = run_cli("topics", "apply", env={"HOTPATH_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}"})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"hotpath: cannot reach Kafka at 127.0.0.1:{port}: start it with `make kafka-up` "
        f"or set HOTPATH_BOOTSTRAP_SERVERS"]
    assert "Traceback" not in result.stderr and result.stdout == ""


@contextlib.contextmanager
def socket_closed_port() -> Iterator[int]:
    """A port nothing listens on, held bound (not listening) so no one else takes it meanwhile."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_durability_settings_apply_to_every_declared_topic():
    settings = load_settings(replication_factor=3, min_insync_replicas=2)
    desired = desired_topics(settings)
    assert len(desired) == len(TOPIC_SETTINGS)
    for topic in desired:
        assert topic.replication_factor == 3, topic.name
        assert topic.config["min.insync.replicas"] == "2", topic.name
    single_copies = {topic.name: ObservedTopic(topic.partitions, 1, {**topic.config, "min.insync.replicas": "1"})
                     for topic in desired}
    topic_plan = plan(desired, single_copies)
    assert {change.kind for change in topic_plan.changes} == {"config"}
    assert all(change.config_diff == (("min.insync.replicas", "1", "2"),) for change in topic_plan.changes)
    assert len(topic_plan.notices) == len(desired)
    assert all("has replication factor 1, configured 3" in notice for notice in topic_plan.notices)


@pytest.fixture
def topic_prefix(kafka_admin) -> Iterator[str]:
    """A unique prefix for the topics a test applies; they are deleted after it."""
    prefix = f"apply-{uuid.uuid4().hex[:8]}-"
    yield prefix
    leftovers = [name for name in kafka_admin.list_topics(timeout=10).topics if name.startswith(prefix)]
    if leftovers:
        for future in kafka_admin.delete_topics(leftovers).values():
            future.result()


def test_created_topics_carry_min_insync_replicas_set_by_hotpath(kafka_bootstrap, kafka_admin, topic_prefix):
    from confluent_kafka.admin import ConfigResource, ConfigSource, ResourceType

    prefix = topic_prefix
    settings = load_settings(bootstrap_servers=kafka_bootstrap, min_insync_replicas=1)
    apply_topics(settings, prefix=prefix)
    for name in (prefix + settings.topic_escalations, prefix + settings.topic_entity_events):
        resource = ConfigResource(ResourceType.TOPIC, name)
        entry = kafka_admin.describe_configs([resource])[resource].result()["min.insync.replicas"]
        # set on the topic by hotpath, not inherited from whatever the broker's default is
        assert (entry.value, entry.source) == ("1", ConfigSource.DYNAMIC_TOPIC_CONFIG.value), name
        replicas = kafka_admin.list_topics(topic=name, timeout=10).topics[name].partitions[0].replicas
        assert len(replicas) == settings.replication_factor


def test_a_replication_factor_above_the_brokers_stops_apply_with_one_line(kafka_bootstrap, topic_prefix):
    prefix = topic_prefix
    env = {"HOTPATH_BOOTSTRAP_SERVERS": kafka_bootstrap, "HOTPATH_REPLICATION_FACTOR": "2"}
    result = run_cli("topics", "apply", "--prefix", prefix, env=env)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"hotpath: HOTPATH_REPLICATION_FACTOR is 2, but the cluster at {kafka_bootstrap} has 1 broker: "
        f"lower the setting or add brokers"]
    assert not plan_topics(load_settings(bootstrap_servers=kafka_bootstrap), prefix=prefix).unchanged
