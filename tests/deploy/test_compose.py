"""docker-compose.yml and the Collector config agree with the topic declarations, Settings and the CLI."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from environment import settings_read_from
from paths import ROOT

from stream.commands.main import COMMANDS
from stream.kafka.topics import load_declarations
from stream.settings import Settings, web_bind_host

# The declared defaults, not whatever HOTPATH_* variables this shell happens to set.
DEFAULTS = SimpleNamespace(**{name: field.default for name, field in Settings.model_fields.items()})
# hotpath's long-running services and the setting that gives each one's web port.
SERVERS = {"worker": "web_port", "deliver": "deliver_web_port"}
HOTPATH_SERVICES = ("topics", *SERVERS)


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


def test_the_stack_has_the_broker_topics_worker_deliver_and_collector(compose):
    assert set(compose["services"]) == {"kafka", "topics", "worker", "deliver", "otel-collector"}


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
    for name in HOTPATH_SERVICES:
        assert compose["services"][name]["environment"]["HOTPATH_BOOTSTRAP_SERVERS"] in advertised
    assert set(collector["exporters"]["kafka"]["brokers"]) <= advertised


def test_hotpath_services_run_real_cli_commands_from_the_projects_image(compose):
    dockerfile = ROOT / compose["services"]["worker"]["build"]["dockerfile"]
    assert 'ENTRYPOINT ["hotpath"]' in dockerfile.read_text()
    known = {words for words, _, _ in COMMANDS}
    for name in HOTPATH_SERVICES:
        assert tuple(compose["services"][name]["command"]) in known
        assert compose["services"][name]["build"]["dockerfile"] == "deploy/Dockerfile"
    for name, port_setting in SERVERS.items():
        port = getattr(DEFAULTS, port_setting)
        assert published(compose["services"][name])[port] == f"127.0.0.1:{port}"


def test_topics_exist_before_anything_writes_or_reads_them(compose):
    for name in ("worker", "deliver", "otel-collector"):
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


def interpolated(value: str) -> str:
    """A compose value with its ``${NAME:-default}`` references at their defaults (nothing set in the shell)."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def service_settings(service: dict, monkeypatch) -> Settings:
    """The Settings hotpath reads in a service's container."""
    return settings_read_from({name: interpolated(str(value)) for name, value in service["environment"].items()},
                              monkeypatch)


@pytest.mark.parametrize("name", SERVERS)
def test_the_servers_listen_where_their_published_port_and_healthcheck_reach(compose, name, monkeypatch):
    """A published port forwards to the container's own address, not its loopback."""
    service = compose["services"][name]
    settings = service_settings(service, monkeypatch)
    assert web_bind_host(settings) == "0.0.0.0" and settings.web_token is not None
    port = getattr(settings, SERVERS[name])
    assert port in published(service)
    probe = " ".join(service["healthcheck"]["test"])
    assert f"http://127.0.0.1:{port}/health/live" in probe


@pytest.mark.parametrize("name", HOTPATH_SERVICES)
def test_hotpath_containers_write_only_to_tmp_and_data(compose, name):
    service = compose["services"][name]
    assert service["read_only"] is True and service["tmpfs"] == ["/tmp"]
    assert {volume.split(":")[1] for volume in service.get("volumes", [])} <= {"/data"}
    assert "user" not in service  # the image's unprivileged user


@pytest.fixture(scope="module")
def dockerfile_stages() -> list[list]:
    """The Dockerfile's instructions, one list per stage (parsed with BuildKit's own parser)."""
    import dockerfile

    stages: list[list] = []
    for instruction in dockerfile.parse_file(str(ROOT / "deploy" / "Dockerfile")):
        if instruction.cmd.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def instructions(stage: list, name: str) -> list:
    return [instruction for instruction in stage if instruction.cmd.upper() == name]


def test_the_image_is_built_in_one_stage_and_runs_from_another(dockerfile_stages):
    build, runtime = dockerfile_stages
    build_name = instructions(build, "FROM")[0].value[-1]
    copied = [(i.flags, i.value) for i in instructions(runtime, "COPY")]
    assert (("--from=" + build_name,), ("/opt/hotpath", "/opt/hotpath")) in copied
    assert not instructions(runtime, "RUN") or all("pip" not in i.value[0] for i in instructions(runtime, "RUN"))
    assert instructions(runtime, "ENTRYPOINT")[0].value == ("hotpath",)
    assert instructions(runtime, "CMD")[0].value == ("worker",)


def test_the_image_installs_the_aws_extra_for_msk_iam_and_leaves_the_demo_out(dockerfile_stages):
    build = dockerfile_stages[0]
    (install,) = [i.value[0] for i in instructions(build, "RUN") if "pip install" in i.value[0]]
    extras = re.search(r"pip install '\.\[([a-z,]+)\]'", install)
    assert extras is not None and extras.group(1).split(",") == ["aws"]
    # the extra's reason: the production overlay signs Amazon MSK IAM tokens
    prod_settings = (ROOT / "deploy" / "k8s" / "overlays" / "prod" / "settings.env").read_text().splitlines()
    assert "HOTPATH_SASL_OAUTH_PROVIDER=msk_iam" in prod_settings


def test_the_image_runs_as_a_numeric_unprivileged_user_writing_only_its_data_volume(dockerfile_stages):
    runtime = dockerfile_stages[-1]
    (user,) = instructions(runtime, "USER")
    uid, _, gid = user.value[0].partition(":")
    assert uid.isdigit() and int(uid) > 0 and gid.isdigit()
    env = dict(zip(*[iter(sum((i.value for i in instructions(runtime, "ENV")), ()))] * 2, strict=True))
    volumes = set(sum((i.value for i in instructions(runtime, "VOLUME")), ()))
    assert volumes == {"/data"}
    assert Path(env["HOTPATH_DATA_DIR"]).is_relative_to("/data")
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"  # no .pyc beside the read-only code
    assert f"install -d -o {uid} -g {gid}" in " ".join(i.value[0] for i in instructions(runtime, "RUN"))


def test_the_build_context_holds_only_what_the_image_copies():
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    assert patterns[0] == "*"  # everything is left out, then the image's inputs are let back in
    assert {line.lstrip("!").rstrip("/") for line in patterns if line.startswith("!")} == {
        "pyproject.toml", "README.md", "stream", "topics"}
