"""docker-compose.yml and the Collector config agree with the topic declarations, Settings and the CLI."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from stream.cli import COMMANDS
from stream.settings import Settings
from stream.topics import load_declarations

ROOT = Path(__file__).resolve().parent.parent
# The declared defaults, not whatever HOTPATH_* variables this shell happens to set.
DEFAULTS = SimpleNamespace(**{name: field.default for name, field in Settings.model_fields.items()})


def load_launcher():
    spec = importlib.util.spec_from_file_location("launcher", ROOT / "deploy" / "kafka" / "launcher.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def collector() -> dict:
    return yaml.safe_load((ROOT / "deploy" / "otel-collector.yaml").read_text())


def published(service: dict) -> dict[int, str]:
    """container port -> "host_ip:host_port" for a service's ``ports``."""
    mapping = {}
    for entry in service.get("ports", []):
        host_ip, host_port, container_port = entry.split(":")
        mapping[int(container_port)] = f"{host_ip}:{host_port}"
    return mapping


def listeners(value: str) -> dict[str, str]:
    """``NAME://host:port,...`` -> {NAME: "host:port"}."""
    return dict(item.split("://") for item in value.split(","))


def test_the_stack_has_the_broker_topics_worker_and_collector(compose):
    assert set(compose["services"]) == {"kafka", "topics", "worker", "otel-collector"}


def test_the_broker_is_the_launchers_kafka_version(compose):
    assert compose["services"]["kafka"]["image"] == f"apache/kafka:{load_launcher().DEFAULT_VERSION}"


def test_the_host_reaches_the_broker_at_the_default_bootstrap_address(compose):
    env = compose["services"]["kafka"]["environment"]
    bound = {name: address.rsplit(":", 1)[1] for name, address in listeners(env["KAFKA_LISTENERS"]).items()}
    advertised = listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    host_listener = next(name for name, address in advertised.items() if address == DEFAULTS.bootstrap_servers)
    assert published(compose["services"]["kafka"])[int(bound[host_listener])] == DEFAULTS.bootstrap_servers


def test_containers_reach_the_broker_on_its_advertised_internal_listener(compose, collector):
    advertised = set(listeners(compose["services"]["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]).values())
    for name in ("topics", "worker"):
        assert compose["services"][name]["environment"]["HOTPATH_BOOTSTRAP_SERVERS"] in advertised
    assert set(collector["exporters"]["kafka"]["brokers"]) <= advertised


def test_hotpath_services_run_real_cli_commands_from_the_projects_image(compose):
    dockerfile = ROOT / compose["services"]["worker"]["build"]["dockerfile"]
    assert 'ENTRYPOINT ["hotpath"]' in dockerfile.read_text()
    known = {words for words, _, _ in COMMANDS}
    for name in ("topics", "worker"):
        assert tuple(compose["services"][name]["command"]) in known
    assert published(compose["services"]["worker"])[DEFAULTS.web_port] == f"127.0.0.1:{DEFAULTS.web_port}"


def test_topics_exist_before_anything_writes_or_reads_them(compose):
    for name in ("worker", "otel-collector"):
        assert compose["services"][name]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert compose["services"]["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_the_collector_writes_the_declared_traces_topic_keyed_by_trace(collector, compose):
    traces = next(d for d in load_declarations(DEFAULTS.topics_dir) if d.setting == "topic_traces")
    exporter = collector["exporters"]["kafka"]
    assert exporter["traces"]["topic"] == DEFAULTS.topic_traces
    assert exporter["traces"]["encoding"] in traces.value.formats
    assert exporter["partition_traces_by_id"] is True and traces.key.format == "trace-id"
    assert collector["service"]["pipelines"]["traces"]["exporters"] == ["kafka"]


def test_the_collectors_otlp_ports_are_published(collector, compose):
    protocols = collector["receivers"]["otlp"]["protocols"]
    ports = {int(protocols[p]["endpoint"].rsplit(":", 1)[1]) for p in ("grpc", "http")}
    assert ports == {4317, 4318}
    assert set(published(compose["services"]["otel-collector"])) == ports
