"""Faults on the real broker (issue 9): a crashed worker, a lost group member, a broker outage, poison
input and a receiver outage. Each test plays the seeded scenario through real `hotpath` processes,
injects the fault mid-stream, and checks what a subscriber of ``hotpath.escalations`` ends up with:
the final escalations of an undisturbed run (the scenario's expected end state, which
tests/broker/test_worker.py shows an undisturbed run reaches), every version of every finding exactly once.

How long each recovery took is printed (``pytest -m faults -rP`` shows it); nothing asserts on speed.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import orjson
import pytest
from brokers import launcher
from delivery import pagerduty_sink, uncommitted
from receivers import ROUTING_KEY, PagerDutyReceiver
from waiting import settle, wait_until
from workers import (
    HotpathProcess,
    Player,
    Record,
    assert_exactly_once,
    free_port,
    metric,
    publish,
    read_topic,
    records_in,
    scenario_records,
)

from stream.correlate.lifecycle import escalation_uid
from stream.demo.scenario import build_scenario
from stream.entities.context import Context
from stream.kafka.clients import producer
from stream.kafka.topics import apply_topics
from stream.settings import Settings, SinkSettings, load_settings
from stream.worker.app import entity_partitions

pytestmark = [pytest.mark.kafka, pytest.mark.faults]

PLAY_S = 20.0  # the scenario's records are spread over this long, so faults land mid-stream
BROKER_DOWN_S = 30.0
RECEIVER_DOWN_S = 60.0
POISON_EVERY = 100  # one poison record per hundred good ones, in every input topic


@pytest.fixture(scope="module")
def scenario():
    # One record per trace, as the Collector's exporter writes with partition_traces_by_id: ~800 records.
    return build_scenario(seed=11, scale=1, minutes=6, partition_traces_by_id=True)


# --- helpers ---------------------------------------------------------------------------------------------


def report(fault: str, **seconds: float) -> None:
    print(f"fault {fault}: " + ", ".join(f"{name} {value:.1f}s" for name, value in seconds.items()))


def expect_final(settings: Settings, scenario) -> list[dict]:
    """Read the escalations until the undisturbed end state shows, and check every version came once."""
    events = settle(settings, scenario.expected.escalated)
    assert events, "nothing was escalated"
    assert_exactly_once(events)
    return events


def escalated(*workers: HotpathProcess) -> float:
    return sum(sum(metric(worker, "hotpath_escalations_total").values()) for worker in workers)


def owned(worker: HotpathProcess) -> list[int] | None:
    """The entity partitions the worker says it owns on /health; None while it is down or not ready."""
    try:
        status, body = worker.get("/health")
    except OSError:
        return None
    return orjson.loads(body)["partitions"] if status == 200 else None


class FrontDoor:
    """A TCP port in front of a receiver: while closed, connections are refused, as by a stopped service;
    while open, each connection is piped to the receiver."""

    def __init__(self, target_url: str) -> None:
        host, port = target_url.removeprefix("http://").split(":")
        self.target = (host, int(port))
        self.port = free_port()
        self._listener: socket.socket | None = None

    def open(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(source, sink), daemon=True).start()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


# --- the faults ------------------------------------------------------------------------------------------


def test_a_worker_killed_mid_stream_recovers_its_tables_and_emits_each_version_once(hotpath_settings, scenario,
                                                                                     tmp_path):
    settings = hotpath_settings
    player = Player(settings, scenario_records(settings, scenario), PLAY_S)
    with HotpathProcess("worker", settings, tmp_path) as worker:
        worker.wait_ready()
        player.start()
        player.wait_for_share(0.5)
        wait_until(lambda: escalated(worker) > 0, "the worker has escalated something")
        worker.kill()
        killed = time.monotonic()
        worker.start()
        worker.wait_ready()
        ready = time.monotonic() - killed
        player.finish()
        expect_final(settings, scenario)
        settled = time.monotonic() - killed
    report("SIGKILL one worker", kill_to_ready=ready, kill_to_final_escalations=settled)


def test_a_survivor_takes_over_a_killed_workers_partitions_and_shares_them_when_it_returns(
        hotpath_settings, scenario, tmp_path):
    settings = hotpath_settings
    every_partition = list(range(entity_partitions(settings)))
    player = Player(settings, scenario_records(settings, scenario), PLAY_S)
    with HotpathProcess("worker", settings, tmp_path, name="a") as a, \
            HotpathProcess("worker", settings, tmp_path, name="b") as b:
        a.wait_ready()
        b.wait_ready()
        wait_until(lambda: owned(a) and owned(b), "both workers own entity partitions")
        player.start()
        player.wait_for_share(0.3)
        wait_until(lambda: escalated(a, b) > 0, "the workers have escalated something")
        a.kill()
        killed = time.monotonic()
        taken_over = wait_until(lambda: owned(b) == every_partition, "b owns every entity partition")
        carried_on = records_in(b)
        wait_until(lambda: records_in(b) > carried_on, "b goes on reading input")
        player.wait_for_share(0.7)
        a.start()
        returned = time.monotonic()
        a.wait_ready()
        wait_until(lambda: sorted((owned(a) or []) + (owned(b) or [])) == every_partition and owned(a) and owned(b),
                   "the partitions are spread over both again")
        spread = time.monotonic() - returned
        player.finish()
        expect_final(settings, scenario)
        settled = time.monotonic() - killed
    report("SIGKILL one of two workers", kill_to_takeover=taken_over, restart_to_spread_again=spread,
           kill_to_final_escalations=settled)


@pytest.fixture
def own_broker(tmp_path_factory) -> tuple[Path, str]:
    """A broker of this test's own (run folder, bootstrap), so stopping it disturbs no other test."""
    run_dir = tmp_path_factory.mktemp("outage-broker")
    port = free_port()
    started = launcher("up", run_dir, port, extra=["--controller-port", str(free_port())])
    if started.returncode != 0:
        pytest.fail(f"could not start a broker: {(started.stderr or started.stdout).strip()}", pytrace=False)
    try:
        yield run_dir, f"127.0.0.1:{port}"
    finally:
        launcher("down", run_dir)


def test_a_worker_reconnects_after_the_broker_is_down_for_30_seconds_and_loses_no_input(own_broker, scenario,
                                                                                         tmp_path):
    run_dir, bootstrap = own_broker
    settings = load_settings(bootstrap_servers=bootstrap, app_id=f"hotpath-outage-{uuid.uuid4().hex[:8]}",
                             data_dir=tmp_path / "worker")
    apply_topics(settings)
    records = scenario_records(settings, scenario)
    player = Player(settings, records, PLAY_S)
    with HotpathProcess("worker", settings, tmp_path) as worker:
        worker.wait_ready()
        player.start()
        player.wait_for_share(0.4)
        wait_until(lambda: escalated(worker) > 0, "the worker has escalated something")
        assert launcher("down", run_dir).returncode == 0
        read_before = records_in(worker)
        time.sleep(BROKER_DOWN_S)
        assert launcher("up", run_dir, int(bootstrap.rsplit(":", 1)[1])).returncode == 0
        back = time.monotonic()
        resumed = wait_until(lambda: records_in(worker) > read_before, "the worker reads input again")
        player.finish()
        expect_final(settings, scenario)
        settled = time.monotonic() - back
        produced = Counter(topic for topic, _, _ in records)
        assert {t: metric(worker, "hotpath_records_in_total").get(t, 0) >= n for t, n in produced.items()} == {
            t: True for t in produced}, "input produced during the outage was not read"
        # The context feed reconnected too: a fact another worker would publish now still arrives.
        edges = worker_context(worker)["edges"]
        key, fact = Context.edge_fact("service:fault-probe", "service:fault-probe-db", scenario.end)
        client = producer(settings)
        client.produce(settings.topic_context, key=key.encode(), value=orjson.dumps(fact))
        assert client.flush(30) == 0
        wait_until(lambda: worker_context(worker)["edges"] == edges + 1, "the context feed applies a new fact", 30)
    report("broker down 30 s", broker_up_to_input_read=resumed, broker_up_to_final_escalations=settled)


def worker_context(worker: HotpathProcess) -> dict[str, int]:
    status, body = worker.get("/health")
    assert status == 200, body
    return orjson.loads(body)["context"]


# Per input topic: values that cannot be decoded, and how the dead letter's reason begins.
POISON = {
    "topic_findings": [(b'{"Findings": [', "not valid JSON"), (b'{"hello": "world"}', "unknown finding format"),
                       (b"\xff\xfe\x00", "record is not valid UTF-8 JSON")],
    "topic_traces": [(b"\x0a\xff\xff\xff\xff\x0f", "not a valid OTLP protobuf"),
                     (b'{"resourceSpans": 5}', "the message.resourceSpans must be a JSON array")],
    "topic_alerts": [(b'{"output": 1}', "unknown alert format"), (b"not json", "not valid JSON")],
    "topic_assets": [(b'{"id": 5}', "asset: id"), (b"{", "not valid JSON")],
}


def mix_poison(settings: Settings, records: list[Record]) -> tuple[list[Record], dict[bytes, tuple[str, bytes, str]]]:
    """``records`` with one poison record after every POISON_EVERY-th good one of each input topic (at least
    one per topic, mid-stream), and the poison by key: (topic, value, reason prefix)."""
    topics = {getattr(settings, name): kinds for name, kinds in POISON.items()}
    totals = Counter(topic for topic, _, _ in records)
    seen: Counter[str] = Counter()
    mixed: list[Record] = []
    poison: dict[bytes, tuple[str, bytes, str]] = {}
    for topic, key, value in records:
        mixed.append((topic, key, value))
        seen[topic] += 1
        every = min(POISON_EVERY, totals[topic] // 2 or 1)
        if seen[topic] % every == 0:
            value, reason = topics[topic][len([p for p in poison.values() if p[0] == topic]) % len(topics[topic])]
            poison_key = f"poison-{len(poison)}".encode()
            poison[poison_key] = (topic, value, reason)
            mixed.append((topic, poison_key, value))
    assert set(totals) == {t for t, _, _ in poison.values()} == set(topics)
    return mixed, poison


def test_poison_in_every_input_topic_lands_in_the_dead_letter_topic_and_the_rest_is_processed(
        hotpath_settings, scenario, tmp_path):
    settings = hotpath_settings
    records, poison = mix_poison(settings, scenario_records(settings, scenario))
    publish(settings, records)
    with HotpathProcess("worker", settings, tmp_path) as worker:
        worker.wait_ready()
        started = time.monotonic()
        expect_final(settings, scenario)
        dead = read_topic(settings, settings.topic_dlq, until=lambda got: len(got) >= len(poison))
        dead += read_topic(settings, settings.topic_dlq, idle=3, timeout=20)[len(dead):]
        settled = time.monotonic() - started
        produced = Counter(topic for topic, _, _ in records)
        assert metric(worker, "hotpath_records_in_total") == {t: float(n) for t, n in produced.items()}
    letters = {record["origin"]["key"].encode(): record for _, record in dead}
    assert len(dead) == len(letters) == len(poison), "a poison record was lost or dead-lettered twice"
    for key, (topic, value, reason) in poison.items():
        letter = letters[key]
        assert letter["origin"]["topic"] == topic and letter["stage"] == "decode"
        assert letter["reason"].startswith(reason), letter["reason"]
        if letter["value_encoding"] == "omitted":  # binary: only its size and digest, unless kept raw
            digest = hashlib.sha256(value).hexdigest()
            assert (letter["value_bytes"], letter["value_sha256"]) == (len(value), digest)
        else:
            assert letter["value"] == value.decode()  # text without secrets: masking leaves it as it was
    report(f"{len(poison)} poison records in {len(records)}", start_to_final_escalations_and_dead_letters=settled)


def test_escalations_wait_out_a_receiver_down_for_a_minute_and_page_once_each(hotpath_settings, scenario, tmp_path):
    with PagerDutyReceiver(ROUTING_KEY) as pd:
        door = FrontDoor(pd.url)  # closed: the receiver's address refuses connections
        settings = hotpath_settings.model_copy(update={
            "sinks": [SinkSettings(**pagerduty_sink(pd, url=f"http://127.0.0.1:{door.port}/v2/enqueue"))],
            "delivery_backoff_max_s": 5.0,  # how soon a returning receiver is tried again
            # Refused connections spend the budget: about 100 s of retries (0-5 s each) outlast the outage.
            "delivery_backoff_base_s": 5.0, "delivery_retry_budget": 40,
        })
        publish(settings, scenario_records(settings, scenario))
        keys = {escalation_uid(uid) for uid in scenario.expected.escalated}
        deliver = HotpathProcess("deliver", settings, tmp_path)
        deliver.env["PD_ROUTING_KEY"] = ROUTING_KEY
        with HotpathProcess("worker", settings, tmp_path) as worker, deliver:
            down = time.monotonic()
            worker.wait_ready()
            expect_final(settings, scenario)
            time.sleep(max(0.0, RECEIVER_DOWN_S - (time.monotonic() - down)))
            assert not pd.requests and sum(uncommitted(settings).values()) > 0
            door.open()
            delivered = wait_until(lambda: all(pd.status(key) == "open" for key in keys) and not uncommitted(settings),
                                   "every escalation is delivered and committed")
            door.close()
    assert {key: pd.opened(key) for key in keys} == {key: 1 for key in keys}, "paged more than once"
    assert set(pd.alerts) == keys
    assert not read_topic(settings, settings.topic_dlq, timeout=5), "an escalation was dead-lettered"
    retried = [line for line in deliver.log_path.read_text().splitlines() if '"retrying"' in line]
    assert retried and all("ClientConnectorError" in line for line in retried)
    report("receiver down 60 s", receiver_back_to_all_delivered=delivered)
