"""The worker's web views on a running worker: the metric catalog, the probes, the bearer token on the
data views, Faust's own views switched off, and where the server listens.

The topics have one partition each, so of two workers in one group exactly one holds the partitions
(Faust's assignor is sticky): the other is alive but, deterministically, not ready for as long as the
first one runs. The last test stops the module's worker to see the other take over.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import orjson
import psutil
import pytest
from confluent_kafka.admin import NewTopic
from prometheus_client.parser import text_string_to_metric_families
from workers import HotpathProcess, final_states, publish, read_topic, scenario_records

from stream.demo.scenario import build_scenario
from stream.kafka.topics import TOPIC_SETTINGS
from stream.settings import Settings, load_settings

pytestmark = pytest.mark.kafka

TOKEN = "s3cr3t-token-for-tests"
POISON = b'{"Findings": ['
# name -> (type, label names of its samples) as prometheus_client's parser reports them
CATALOG = {
    "hotpath_records_in": ("counter", {"topic"}),
    "hotpath_decode_errors": ("counter", {"topic"}),
    "hotpath_dlq_records": ("counter", {"stage"}),
    "hotpath_entity_events": ("counter", {"stream"}),
    "hotpath_entity_events_correlated": ("counter", set()),
    "hotpath_escalations": ("counter", {"priority", "state"}),
    "hotpath_processing_latency_seconds": ("histogram", set()),
    "hotpath_consumer_lag_records": ("gauge", {"topic", "partition"}),
    "hotpath_worker_ready": ("gauge", set()),
    "hotpath_context_entries": ("gauge", set()),
}


def get(worker: HotpathProcess, path: str, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    request = urllib.request.Request(f"http://127.0.0.1:{worker.web_port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def families(worker: HotpathProcess) -> dict[str, object]:
    status, body = get(worker, "/metrics")
    assert status == 200, body
    return {family.name: family for family in text_string_to_metric_families(body.decode())}


def wait_for(condition, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.3)


def values(found: dict, sample: str, **labels: str) -> list[float]:
    """The values of the samples named ``sample`` (e.g. ``hotpath_records_in_total``) that have ``labels``."""
    return [s.value for family in found.values() for s in family.samples
            if s.name == sample and labels.items() <= s.labels.items()]


def value(found: dict, sample: str, **labels: str) -> float | None:
    matching = values(found, sample, **labels)
    return matching[0] if matching else None


def escalated(found: dict) -> float:
    """Escalation events counted in state "escalated", whatever their priority."""
    return sum(values(found, "hotpath_escalations_total", state="escalated"))


def listening_address(worker: HotpathProcess) -> str:
    """The address the worker process's web server listens on, as the kernel reports it."""
    sockets = [c for c in psutil.Process(worker.proc.pid).net_connections(kind="inet")
               if c.status == psutil.CONN_LISTEN and c.laddr.port == worker.web_port]
    assert len(sockets) == 1, sockets
    return sockets[0].laddr.ip


@pytest.fixture(scope="module")
def scenario():
    return build_scenario(seed=11, scale=1, minutes=6)


@pytest.fixture(scope="module")
def settings(kafka_bootstrap, kafka_admin, tmp_path_factory):
    from brokers import ADMIN_TIMEOUT_S, unique_suffix, wait_for_topic

    suffix = unique_suffix()
    defaults = {name: field.default for name, field in Settings.model_fields.items()}
    settings = load_settings(bootstrap_servers=kafka_bootstrap, app_id=f"hotpath-web-{suffix}",
                             data_dir=tmp_path_factory.mktemp("web"),
                             **{name: f"w{suffix}-{defaults[name]}" for name in TOPIC_SETTINGS})
    names = [getattr(settings, name) for name in TOPIC_SETTINGS]
    for future in kafka_admin.create_topics([NewTopic(n, 1, 1) for n in names],
                                            operation_timeout=ADMIN_TIMEOUT_S).values():
        future.result()
    for name in names:
        wait_for_topic(kafka_admin, name, 1)
    yield settings
    leftovers = [n for n in kafka_admin.list_topics(timeout=10).topics
                 if n.startswith((f"w{suffix}-", settings.app_id))]
    if leftovers:
        kafka_admin.delete_topics(leftovers)


@pytest.fixture(scope="module")
def worker(settings, scenario, tmp_path_factory):
    """A worker with a token, listening on every address, that has escalated what the scenario expects
    (read back from Kafka); a bad record comes first on the findings topic."""
    publish(settings, [(settings.topic_findings, None, POISON)] + scenario_records(settings, scenario))
    wanted = {uid: ("escalated", priority) for uid, priority in scenario.expected.escalated.items()}
    logs = tmp_path_factory.mktemp("web-logs")
    with HotpathProcess("worker", settings, logs, name="guarded", web_host="0.0.0.0", web_token=TOKEN) as process:
        process.wait_ready()
        read_topic(settings, settings.topic_escalations, timeout=120,
                   until=lambda records: final_states([event for _, event in records]) == wanted)
        yield process


def test_metrics_follow_the_prometheus_catalog(worker, settings, scenario):
    def read_and_committed():
        found = families(worker)
        return (value(found, "hotpath_records_in_total", topic=settings.topic_findings) == len(scenario.findings) + 1
                and value(found, "hotpath_consumer_lag_records", topic=settings.topic_findings) == 0)

    wait_for(read_and_committed, "the worker has read and committed every finding")
    found = families(worker)
    for name, (kind, labels) in CATALOG.items():
        assert name in found, f"{name} missing from /metrics"
        assert found[name].type == kind, (name, found[name].type)
        assert {frozenset(s.labels) - {"le"} for s in found[name].samples} == {frozenset(labels)}, name
    assert "process_resident_memory_bytes" in found and "python_info" in found
    assert value(found, "hotpath_records_in_total", topic=settings.topic_findings) == len(scenario.findings) + 1
    assert value(found, "hotpath_records_in_total", topic=settings.topic_traces) == len(scenario.trace_batches)
    assert value(found, "hotpath_decode_errors_total", topic=settings.topic_findings) == 1
    assert value(found, "hotpath_dlq_records_total", stage="decode") == 1
    assert escalated(found) == len(scenario.expected.escalated), "one escalated event per escalated finding"
    assert {(s.labels["priority"], s.labels["state"]) for s in found["hotpath_escalations"].samples} <= {
        (priority, state) for priority in ("P1", "P2", "P3") for state in ("escalated", "updated")}
    assert value(found, "hotpath_worker_ready") == 1
    assert value(found, "hotpath_context_entries") >= len(scenario.assets)
    latency = found["hotpath_processing_latency_seconds"].samples
    assert {s.labels["le"] for s in latency if "le" in s.labels} == {
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0", "+Inf"}, "seconds"
    assert value(found, "hotpath_processing_latency_seconds_count") == value(
        found, "hotpath_entity_events_correlated_total") > 0
    lag = {(s.labels["topic"], s.labels["partition"]): s.value for s in found["hotpath_consumer_lag_records"].samples}
    read = (settings.topic_findings, settings.topic_traces, settings.topic_alerts, settings.topic_assets,
            settings.topic_entity_events)
    assert set(lag) == {(topic, "0") for topic in read}, "lag of every partition the agents read, no changelog"
    assert lag[(settings.topic_findings, "0")] == 0, "the worker has read and committed every finding"


def test_faust_built_in_views_are_off(worker):
    status, body = get(worker, "/escalations?limit=1", TOKEN)
    entity = json.loads(body)["escalations"][0]["resource"]
    for path in ("/table/", "/table/entity-state/", f"/table/entity-state/{entity}/", "/router/",
                 "/router/topics", "/router/entity-state/", f"/router/entity-state/{entity}/", "/graph/",
                 "/assignment/", "/performance/"):
        assert get(worker, path, TOKEN)[0] == 404, path
    assert orjson.loads(get(worker, "/")[1]) == {"status": "OK"}, "the index says nothing about the worker"


def test_escalations_need_the_token_even_from_loopback(worker):
    assert get(worker, "/escalations")[0] == 401
    assert get(worker, "/escalations", "not-the-token")[0] == 401
    assert get(worker, "/escalations", TOKEN[:-1])[0] == 401
    assert get(worker, "/escalations", TOKEN + "é")[0] == 401
    assert get(worker, "/escalations", TOKEN.upper())[0] == 401
    status, body = get(worker, "/escalations", TOKEN)
    assert status == 200 and json.loads(body)["escalations"]
    for open_path in ("/health/live", "/health/ready", "/health", "/metrics"):
        assert get(worker, open_path)[0] == 200, open_path


@pytest.mark.parametrize("query", ["limit=abc", "limit=-1", "limit=0", "limit=1e3", "limit=99999999999999999999"])
def test_bad_query_parameters_get_400(worker, query):
    status, body = get(worker, f"/escalations?{query}", TOKEN)
    assert status == 400 and "limit" in json.loads(body)["error"]


def test_a_worker_without_partitions_is_alive_not_ready_and_listens_on_loopback_without_a_token(
        worker, settings, tmp_path):
    assert listening_address(worker) == "0.0.0.0", "with a token the views may listen everywhere"
    with HotpathProcess("worker", settings, tmp_path, name="spare", web_host="0.0.0.0") as spare:
        wait_for(lambda: _answers(spare, "/health/live"), "the spare worker's web server answers")
        assert listening_address(spare) == "127.0.0.1", "without a token the views stay on loopback"

        # The topics have one partition, which the first worker keeps while it lives.
        wait_for(lambda: json.loads(get(spare, "/health/ready")[1]).get("status") == "no partitions assigned yet",
                 "the spare has joined the group and got nothing")
        status, body = get(spare, "/health/ready")
        assert status == 503 and json.loads(body)["ready"] is False
        assert get(spare, "/health")[0] == 503
        assert get(spare, "/health/live")[0] == 200
        assert value(families(spare), "hotpath_worker_ready") == 0
        wait_for(lambda: get(worker, "/health/ready")[0] == 200, "the first worker is ready again")

        worker.stop()
        spare.wait_ready()
        assert get(spare, "/health/ready")[0] == 200
        assert value(families(spare), "hotpath_worker_ready") == 1


def _answers(worker: HotpathProcess, path: str) -> bool:
    try:
        return get(worker, path)[0] == 200
    except OSError:
        return False
