"""deploy/k8s: a kustomize base and its dev and prod overlays, checked as Kubernetes and as hotpath would.

Every manifest is validated against the schemas of a pinned Kubernetes version (kubernetes-validate,
strict: unknown fields fail). The overlays are built with ``kustomize build`` (or ``kubectl kustomize``)
when one is on the PATH; without either, only the base files are validated, one by one. The built
manifests are then read the way the cluster and hotpath read them: the ConfigMap's settings must load
as hotpath's Settings, the probes must hit the endpoints on the ports those settings give, the network
policies must leave open only what the pods need, and the alerts and the dashboard may only name
metrics that hotpath exports.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
from functools import cache
from types import SimpleNamespace

import kubernetes_validate
import promql_parser
import pytest
import yaml
from environment import settings_read_from
from paths import ROOT

from stream.kafka.topics import load_declarations
from stream.settings import Settings, web_bind_host

K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
OVERLAYS = ("dev", "prod")
KUBERNETES_VERSION = "1.33.0"
# Kinds of the Prometheus Operator: no schema in kubernetes-validate; the monitoring tests check them.
OPERATOR_API = "monitoring.coreos.com/v1"
DEFAULTS = SimpleNamespace(**{name: field.default for name, field in Settings.model_fields.items()})
# The pods' web servers and the settings that give their ports.
SERVERS = {"hotpath-worker": "web_port", "hotpath-deliver": "deliver_web_port"}
# Series Prometheus makes itself when it scrapes, not exported by any process.
SCRAPE_SERIES = {"up"}


def kustomize_build_command() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


@cache
def built(overlay: str) -> tuple[dict, ...]:
    command = kustomize_build_command()
    if command is None:
        pytest.skip("neither kustomize nor kubectl is on the PATH: the overlays are not built "
                    "(the base files are still validated one by one)")
    done = subprocess.run([*command, str(K8S / "overlays" / overlay)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def base_documents() -> list[dict]:
    """Every resource the base kustomization lists, as written."""
    listed = yaml.safe_load((BASE / "kustomization.yaml").read_text())["resources"]
    return [doc for name in listed for doc in yaml.safe_load_all((BASE / name).read_text()) if doc]


def validate(doc: dict) -> None:
    if doc["apiVersion"] != OPERATOR_API:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def find(docs, kind: str, name: str | None = None) -> list[dict]:
    return [doc for doc in docs if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)]


def one(docs, kind: str, name: str) -> dict:
    (doc,) = find(docs, kind, name)
    return doc


def settings_config(docs) -> dict:
    """The ConfigMap the pods read their settings from (its name carries kustomize's content hash)."""
    (container,) = one(docs, "Deployment", "hotpath-worker")["spec"]["template"]["spec"]["containers"]
    (name,) = [source["configMapRef"]["name"] for source in container["envFrom"] if "configMapRef" in source]
    return one(docs, "ConfigMap", name)


def overlay_settings(docs, monkeypatch) -> Settings:
    """The Settings a pod of this overlay reads: its ConfigMap, with a web token as its Secret gives one."""
    return settings_read_from({**settings_config(docs)["data"], "HOTPATH_WEB_TOKEN": "from-the-secret"}, monkeypatch)


def pod_templates(docs) -> dict[str, dict]:
    """name -> pod spec of every Deployment and Job."""
    return {doc["metadata"]["name"]: doc["spec"]["template"] for doc in docs if doc["kind"] in ("Deployment", "Job")}


# -- validity ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("doc", [pytest.param(doc, id=f"{doc['kind']}/{doc['metadata']['name']}")
                                 for doc in base_documents()])
def test_every_base_manifest_is_valid_for_the_pinned_kubernetes(doc):
    validate(doc)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_builds_into_manifests_valid_for_the_pinned_kubernetes(overlay):
    docs = built(overlay)
    assert {"Deployment", "Job", "Service", "NetworkPolicy", "ServiceMonitor", "PrometheusRule"} <= {
        doc["kind"] for doc in docs}
    for doc in docs:
        validate(doc)
        assert doc["kind"] == "Namespace" or doc["metadata"]["namespace"] == "hotpath"


# -- settings, probes, pods -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("overlay", "replication", "min_insync"), [("dev", 1, 1), ("prod", 3, 2)])
def test_the_overlays_settings_are_ones_hotpath_accepts(overlay, replication, min_insync, monkeypatch):
    docs = built(overlay)
    names = settings_config(docs)["data"]
    unknown = [key for key in names if key.removeprefix("HOTPATH_").lower() not in Settings.model_fields]
    assert not unknown, f"not hotpath settings (a typo is silently ignored): {unknown}"

    settings = overlay_settings(docs, monkeypatch)
    assert (settings.replication_factor, settings.min_insync_replicas) == (replication, min_insync)
    assert web_bind_host(settings) == "0.0.0.0"  # with the token, the probes can reach the pods


def test_prod_authenticates_to_msk_with_iam_and_routes_its_sinks(monkeypatch):
    settings = overlay_settings(built("prod"), monkeypatch)
    assert (settings.security_protocol, settings.sasl_mechanism, settings.sasl_oauth_provider) == (
        "SASL_SSL", "OAUTHBEARER", "msk_iam")
    assert {sink.name for sink in settings.sinks} == {"payments-pagerduty", "ledger-pagerduty", "soc-webhook"}
    service_account = one(built("prod"), "ServiceAccount", "hotpath")
    assert service_account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_hit_the_health_endpoints_on_the_ports_the_settings_give(overlay, monkeypatch):
    docs = built(overlay)
    settings = overlay_settings(docs, monkeypatch)
    for name, port_setting in SERVERS.items():
        (container,) = one(docs, "Deployment", name)["spec"]["template"]["spec"]["containers"]
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        probes = {kind: container[f"{kind}Probe"]["httpGet"] for kind in ("startup", "liveness", "readiness")}
        assert {kind: probe["path"] for kind, probe in probes.items()} == {
            "startup": "/health/live", "liveness": "/health/live", "readiness": "/health/ready"}
        assert {ports[probe["port"]] for probe in probes.values()} == {getattr(settings, port_setting)}
        token = next(env for env in container["env"] if env["name"] == "HOTPATH_WEB_TOKEN")
        assert set(token["valueFrom"]) == {"secretKeyRef"}
        service = one(docs, "Service", name)
        assert [(port["port"], port["targetPort"]) for port in service["spec"]["ports"]] == [
            (getattr(settings, port_setting), "http")]


def dockerfile_user() -> int:
    import dockerfile

    users = [command.value[0] for command in dockerfile.parse_file(str(ROOT / "deploy" / "Dockerfile"))
             if command.cmd.upper() == "USER"]
    return int(users[-1].split(":")[0])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_runs_the_image_unprivileged_on_a_read_only_root(overlay):
    docs = built(overlay)
    images = set()
    for name, template in pod_templates(docs).items():
        spec = template["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] == dockerfile_user(), name
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert {mount["mountPath"] for mount in container.get("volumeMounts", [])} <= {"/data", "/tmp"}, name
            assert "memory" in container["resources"]["limits"], name
            images.add(container["image"])
    assert len(images) == 1, images
    assert one(docs, "ServiceAccount", "hotpath")["automountServiceAccountToken"] is False


def test_the_dev_overlay_runs_the_image_docker_compose_builds():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    (image,) = {c["image"] for t in pod_templates(built("dev")).values() for c in t["spec"]["containers"]}
    assert image == compose["services"]["worker"]["image"]
    assert compose["services"]["worker"]["build"]["dockerfile"] == "deploy/Dockerfile"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_there_are_no_more_workers_than_entity_event_partitions(overlay):
    declarations = load_declarations(DEFAULTS.topics_dir)
    partitions = next(d.partitions for d in declarations if d.setting == "topic_entity_events")
    assert 1 <= one(built(overlay), "Deployment", "hotpath-worker")["spec"]["replicas"] <= partitions


# -- network policies -------------------------------------------------------------------------------------------

def selects(selector: dict, labels: dict) -> bool:
    assert "matchExpressions" not in selector, "the evaluator below reads matchLabels only"
    return selector.get("matchLabels", {}).items() <= labels.items()


def openings(docs, labels: dict, direction: str) -> list[tuple[dict, set[tuple[str, int]]]]:
    """(peer, {(protocol, port)}) of every rule that lets traffic reach (ingress) or leave (egress) a pod.

    A pod that no policy of the direction selects would be open: that is reported as ({}, {("*", 0)}).
    """
    kind = direction.capitalize()
    policies = [doc["spec"] for doc in find(docs, "NetworkPolicy")
                if selects(doc["spec"]["podSelector"], labels) and kind in doc["spec"]["policyTypes"]]
    if not policies:
        return [({}, {("*", 0)})]
    rules = []
    for policy in policies:
        for rule in policy.get(direction, []):
            peers = rule.get("to" if direction == "egress" else "from") or [{}]
            ports = {(port.get("protocol", "TCP"), port["port"]) for port in rule.get("ports", [])} or {("*", 0)}
            rules += [(peer, ports) for peer in peers]
    return rules


def pod_labels(docs, name: str) -> dict:
    return pod_templates(docs)[name]["metadata"]["labels"]


def is_internet(peer: dict) -> bool:
    block = peer.get("ipBlock")
    return peer == {} or (block is not None and ipaddress.ip_network(block["cidr"]).prefixlen == 0)


DNS = {("UDP", 53), ("TCP", 53)}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_web_ports_admit_only_prometheus_and_nothing_else_reaches_the_pods(overlay, monkeypatch):
    docs = built(overlay)
    settings = overlay_settings(docs, monkeypatch)
    for name, port_setting in SERVERS.items():
        rules = openings(docs, pod_labels(docs, name), "ingress")
        assert [ports for _, ports in rules] == [{("TCP", getattr(settings, port_setting))}], name
        ((peer, _),) = rules
        assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"}
        assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "prometheus"}
    assert openings(docs, pod_labels(docs, "hotpath-topics"), "ingress") == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_egress_is_kafka_and_dns_and_only_deliver_reaches_the_webhooks(overlay, monkeypatch):
    docs = built(overlay)
    settings = overlay_settings(docs, monkeypatch)
    kafka_ports = {("TCP", int(server.rsplit(":", 1)[1])) for server in settings.bootstrap_servers.split(",")}
    for name in ("hotpath-worker", "hotpath-deliver", "hotpath-topics"):
        rules = openings(docs, pod_labels(docs, name), "egress")
        allowed = set().union(*(ports for _, ports in rules))
        assert DNS | kafka_ports <= allowed, name
        internet = set().union(*(ports for peer, ports in rules if is_internet(peer)), set())
        assert internet == ({("TCP", 443)} if name == "hotpath-deliver" else set()), name
        assert ("*", 0) not in allowed, name
        extra = allowed - DNS - kafka_ports - {("TCP", 443)}
        assert not extra, f"{name} may also reach {extra}"
    webhooks = next(peer for peer, ports in openings(docs, pod_labels(docs, "hotpath-deliver"), "egress")
                    if is_internet(peer))
    assert "169.254.0.0/16" in webhooks["ipBlock"]["except"]  # never the instance metadata service


# -- monitoring -------------------------------------------------------------------------------------------------

def metric_names(expression: str) -> set[str]:
    """Names of the series a PromQL expression selects (parsed, so a syntax error fails here)."""
    names: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            names.add(node.name)
        elif isinstance(node, promql_parser.MatrixSelector):
            walk(node.vector_selector)
        elif isinstance(node, promql_parser.BinaryExpr):
            walk(node.lhs)
            walk(node.rhs)
        elif isinstance(node, promql_parser.Call):
            for arg in node.args:
                walk(arg)
        elif isinstance(node, promql_parser.AggregateExpr):
            walk(node.expr)
            if node.param is not None:
                walk(node.param)
        elif isinstance(node, promql_parser.ParenExpr | promql_parser.UnaryExpr | promql_parser.SubqueryExpr):
            walk(node.expr)

    walk(promql_parser.parse(expression))
    return names


def alerting_rules() -> list[dict]:
    (rule,) = find(base_documents(), "PrometheusRule")
    return [entry for group in rule["spec"]["groups"] for entry in group["rules"]]


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((BASE / "grafana-dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


@cache
def exported_metric_names() -> frozenset[str]:
    """Every series name hotpath's processes expose at /metrics: the worker's and deliver's catalogs, as
    each process registers them, with the process_* and python_* metrics prometheus_client adds, and the
    suffixes Prometheus text gives each type."""
    from stream.deliver.metrics import DeliveryMetrics
    from stream.metrics import Metrics

    registries = [Metrics().registry, DeliveryMetrics().registry]
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
                "summary": ("", "_count", "_sum", "_created"), "gauge": ("",), "info": ("_info",)}
    names = set()
    for family in (family for registry in registries for family in registry.collect()):
        names |= {family.name + suffix for suffix in suffixes.get(family.type, ("",))}
        names |= {sample.name for sample in family.samples}
    return frozenset(names)


def test_every_alert_and_panel_query_is_valid_promql_with_a_severity_and_a_summary():
    for rule in alerting_rules():
        assert metric_names(rule["expr"]), rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
    for expression in dashboard_expressions():
        assert metric_names(expression), expression


def test_the_alerts_cover_lag_dead_letters_delivery_stalls_and_readiness():
    named = [metric_names(rule["expr"]) for rule in alerting_rules()]
    wanted = [
        {"hotpath_consumer_lag_records"},
        {"hotpath_dlq_records_total", "hotpath_records_in_total"},
        {"hotpath_deliver_dead_lettered_total"},
        {"hotpath_deliver_retries_total"},
        {"hotpath_records_in_total", "hotpath_entity_events_correlated_total"},  # input flows, nothing applied
        {"hotpath_escalations_total", "hotpath_deliver_records_total"},
        {"hotpath_worker_ready"},
        {"hotpath_deliver_ready"},
    ]
    for metrics in wanted:
        assert any(metrics <= names for names in named), f"no alert on {metrics}"


def test_the_alerts_and_the_dashboard_name_only_metrics_hotpath_exports():
    exported = exported_metric_names() | SCRAPE_SERIES
    for rule in alerting_rules():
        assert metric_names(rule["expr"]) <= exported, (rule["alert"], metric_names(rule["expr"]) - exported)
    for expression in dashboard_expressions():
        assert metric_names(expression) <= exported, (expression, metric_names(expression) - exported)


def test_the_service_monitor_scrapes_both_servers_metrics():
    docs = base_documents()
    (monitor,) = find(docs, "ServiceMonitor")
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    for name in SERVERS:
        service = one(docs, "Service", name)
        assert selects(monitor["spec"]["selector"], service["metadata"]["labels"]), name
        assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_dashboard_ships_as_a_configmap_grafana_loads(overlay):
    dashboards = [doc for doc in find(built(overlay), "ConfigMap")
                  if doc["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
    (dashboard,) = dashboards
    assert json.loads(dashboard["data"]["hotpath.json"]) == json.loads((BASE / "grafana-dashboard.json").read_text())
