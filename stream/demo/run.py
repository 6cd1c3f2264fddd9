"""The demo's run (``hotpath demo``): play the seeded fintech scenario through Kafka, show what hotpath escalates.

1. Builds the scenario (:mod:`stream.demo.scenario`) for ``--seed``/``--scale``/``--minutes``, ending at
   the current minute: the worker runs with hotpath's real defaults, which refuse spans and alerts
   older than ``HOTPATH_MAX_EVENT_AGE_S`` (a week) as a production worker would.
2. Uses the broker at ``HOTPATH_BOOTSTRAP_SERVERS``; when nothing answers on a local address, starts
   one with ``deploy/kafka/launcher.py`` and stops it again at the end.
3. Isolates the run: a run id names every topic (``demo-<id>.hotpath.findings`` ...) and the worker's
   app id (``hotpath-demo-<id>``), so repeated demos, or a broker shared with tests, never mix state.
   The run's topics are deleted at the end (``--keep-topics`` keeps them); what came out is copied to
   ``<run-dir>/<id>/`` (escalations, the SIEM feed, what PagerDuty received, the workers' logs).
4. Publishes the demo's policy (``stream/demo/policy.yaml``: one accepted risk, muted until a year
   after the day it plays) with ``hotpath policy publish``, as an operator would, which records the
   publication on the audit topic. Starts ``hotpath worker`` and ``hotpath deliver`` as child processes,
   and a local receiver that answers like PagerDuty's Events API v2 (the one webhook sink, threshold P3).
5. Produces the assets, then findings, trace batches and alerts in event-time order, compressing
   the scenario's event time into ``--play-seconds`` of wall time, with a progress line.
6. Waits until the worker has consumed everything and no escalation or webhook arrived for
   ``--settle-seconds`` (bounded by ``--timeout``), prints the final screen (the escalations, the
   accepted risk "suppressed by" its rule, the audit trail), and shuts everything it started down
   (:meth:`Demo.shutdown`, which the command calls also after Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from stream.demo import screen
from stream.demo.ports import free_port
from stream.demo.receiver import PagerDutyReceiver
from stream.demo.scenario import Scenario, build_scenario, start_ending_at, workers_for
from stream.settings import Settings, SinkSettings

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "deploy" / "kafka" / "launcher.py"
LOCAL_HOSTS = ("127.0.0.1", "localhost")
DEFAULT_KAFKA_PORT = "9092"
PAGERDUTY_KEY_ENV = "HOTPATH_DEMO_PAGERDUTY_ROUTING_KEY"
PUBLISHER = "hotpath demo"  # who publishes the demo's policy, as the audit trail names them
STOP_TIMEOUT_S = 20.0
OCSF_SUPPRESSED = 3  # OCSF status_id of a suppressed Detection Finding
PROGRESS_EVERY_S = 0.25
PLAIN_PROGRESS_EVERY_S = 5.0


class DemoError(Exception):
    """Something the demo cannot get past; the message is one line for the user."""


@dataclass(frozen=True)
class DemoOptions:
    """What one run plays and how long it waits (``hotpath demo``'s options)."""

    seed: int
    scale: int
    minutes: int
    play_seconds: float
    settle_seconds: float
    timeout: float
    partition_traces_by_id: bool
    keep_running: bool
    keep_topics: bool
    run_dir: Path


class Child:
    """A ``hotpath`` sub-command in its own session (so Ctrl-C reaches the demo, which stops it in order)."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path):
        self.name = name
        self.log_path = log
        self._log: IO[bytes] = log.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "stream.commands.main", *command], env=env,
                                     stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM (graceful: commit, leave the group), SIGKILL after a grace period; always reaped."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()

    def tail(self, lines: int = 12) -> str:
        text = self.log_path.read_text(errors="replace").strip().splitlines()[-lines:]
        return "\n".join(f"    {line}" for line in text)


class Watcher(threading.Thread):
    """Reads a topic from the beginning (every partition, no group) and keeps its JSON values."""

    def __init__(self, settings: Settings, topic: str):
        super().__init__(name=f"demo-watch-{topic}", daemon=True)
        self.settings = settings
        self.topic = topic
        self.values: list[dict[str, Any]] = []
        self.last_at = 0.0
        self._lock = threading.Lock()
        self._halt = threading.Event()

    def run(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        from stream.kafka.clients import consumer

        client = consumer(self.settings, group_id=f"{self.settings.app_id}-demo-watch", enable_auto_commit=False)
        try:
            partitions = client.list_topics(self.topic, timeout=10).topics[self.topic].partitions
            client.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
            while not self._halt.is_set():
                for message in client.consume(500, timeout=0.2):
                    if message.error() is None and message.value() is not None:
                        with self._lock:
                            self.values.append(orjson.loads(message.value()))
                            self.last_at = time.monotonic()
        finally:
            client.close()

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.values)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


class Progress:
    """One status line, rewritten in place on a terminal, printed every few seconds otherwise."""

    def __init__(self, stream: IO[str] = sys.stdout):
        self.stream = stream
        self.tty = stream.isatty()
        self._last = 0.0
        self._width = 0

    def update(self, text: str, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < (PROGRESS_EVERY_S if self.tty else PLAIN_PROGRESS_EVERY_S):
            return
        self._last = now
        if self.tty:
            self.stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def done(self, text: str) -> None:
        self.update(text, force=True)
        if self.tty:
            self.stream.write("\n")
            self._width = 0
        self.stream.flush()


class Demo:
    def __init__(self, options: DemoOptions, settings: Settings):
        self.options = options
        self.run_id = uuid.uuid4().hex[:8]
        self.out = options.run_dir / self.run_id
        self.base_settings = settings
        self.settings = settings
        self.receiver = PagerDutyReceiver()
        self.children: list[Child] = []
        self.watcher: Watcher | None = None
        self.started_broker = False
        self.broker_command: list[str] = []
        self.broker_dir: Path | None = None
        self.topics_created = False
        self.env: dict[str, str] = {}
        self.progress = Progress()

    def say(self, text: str) -> None:
        print(text, flush=True)

    # -- the run ----------------------------------------------------------------------------

    def play(self) -> bool:
        """Play the scenario and show the final screen; True when the outcome matches its expectation."""
        options = self.options
        self.out.mkdir(parents=True, exist_ok=True)
        self.say(f"hotpath demo, run {self.run_id}: seed {options.seed}, scale {options.scale}, "
                 f"{options.minutes} minutes of event time")
        started = time.monotonic()
        scenario = build_scenario(options.seed, options.scale, start=start_ending_at(time.time(), options.minutes),
                                  minutes=options.minutes,
                                  partition_traces_by_id=options.partition_traces_by_id,
                                  workers=workers_for(options.scale, options.minutes))
        self.say(f"  scenario: {len(scenario.assets)} assets, {len(scenario.findings)} findings, "
                 f"{scenario.span_count:,} spans in {len(scenario.trace_batches)} OTLP records, "
                 f"{len(scenario.alerts)} alerts (built in {time.monotonic() - started:.1f} s)")
        self.ensure_broker()
        url = self.receiver.start()
        self.create_topics(url)
        self.env = self.child_env()
        self.publish_policy(scenario)
        self.start_children()
        self.watcher = Watcher(self.settings, self.settings.topic_escalations)
        self.watcher.start()
        self.produce(scenario)
        self.settle()
        ok = self.final_screen(scenario, url)
        if options.keep_running:
            self.wait_for_interrupt()
        return ok

    def ensure_broker(self) -> None:
        servers = self.settings.bootstrap_servers
        if _broker_answers(self.settings):
            self.say(f"  Kafka: using the broker at {servers}")
            return
        host, _, port = servers.partition(",")[0].rpartition(":")
        if "," in servers or host not in LOCAL_HOSTS or not port.isdigit():
            raise DemoError(f"no Kafka broker answers at {servers}; start it, or unset HOTPATH_BOOTSTRAP_SERVERS "
                            f"to let the demo run a local one")
        if not LAUNCHER.exists():
            raise DemoError(f"no Kafka broker answers at {servers} and {LAUNCHER} is missing: start a broker")
        self.say(f"  Kafka: nothing answers at {servers}; starting a local broker (stopped again at the end)")
        self.broker_command = [sys.executable, str(LAUNCHER)]
        if port != DEFAULT_KAFKA_PORT:  # the default port keeps the launcher's folder, so `make kafka-down` works
            self.broker_dir = ROOT / ".run" / f"kafka-{port}"
            self.broker_command += ["--run-dir", str(self.broker_dir)]
        self.started_broker = True
        result = subprocess.run([*self.broker_command, "up", "--port", port], cwd=ROOT)
        if result.returncode != 0 or not _broker_answers(self.settings):
            raise DemoError("could not start the local Kafka broker (see the launcher's message above)")

    def create_topics(self, receiver_url: str) -> None:
        from stream.kafka.topics import TOPIC_SETTINGS, TopicsError, apply_topics

        prefix = f"demo-{self.run_id}."
        sink = SinkSettings(name="pagerduty-demo", kind="pagerduty", url=receiver_url, min_priority="P3",
                            secret_env=PAGERDUTY_KEY_ENV)
        self.settings = self.base_settings.model_copy(update={
            **{name: prefix + getattr(self.base_settings, name) for name in TOPIC_SETTINGS},
            "app_id": f"hotpath-demo-{self.run_id}",
            "data_dir": self.out / "worker",
            "web_host": "127.0.0.1",
            "web_port": free_port(),
            "deliver_web_port": free_port(),
            "sinks": [sink],
            "asset_file": None,
        })
        self.topics_created = True  # even half-created ones are the run's, found by prefix at the end
        try:
            changes = apply_topics(self.settings)
        except TopicsError as exc:
            raise DemoError(str(exc)) from None
        fate = "kept at the end (--keep-topics)" if self.options.keep_topics else "deleted at the end"
        self.say(f"  topics: created {len(changes)} topics named {prefix}*, {fate}")

    def child_env(self) -> dict[str, str]:
        from stream.kafka.topics import TOPIC_SETTINGS

        s = self.settings
        env = {key: value for key, value in os.environ.items() if key != "HOTPATH_ASSET_FILE"}
        env.update({f"HOTPATH_{name.upper()}": getattr(s, name) for name in TOPIC_SETTINGS})
        env.update({
            "HOTPATH_BOOTSTRAP_SERVERS": s.bootstrap_servers,
            "HOTPATH_APP_ID": s.app_id,
            "HOTPATH_DATA_DIR": str(s.data_dir.resolve()),
            "HOTPATH_WEB_HOST": s.web_host,
            "HOTPATH_WEB_PORT": str(s.web_port),
            "HOTPATH_DELIVER_WEB_PORT": str(s.deliver_web_port),
            "HOTPATH_LOG_LEVEL": "WARNING",
            "HOTPATH_SINKS": orjson.dumps([sink.model_dump(mode="json", exclude_none=True)
                                           for sink in s.sinks]).decode(),
            # A PagerDuty integration key is 32 characters; this one only ever reaches the local receiver.
            PAGERDUTY_KEY_ENV: "demo" + uuid.uuid4().hex[:28],
        })
        return env

    def publish_policy(self, scenario: Scenario) -> None:
        """``hotpath policy publish`` of the demo's policy, before the worker starts, so it judges every finding."""
        path = scenario.write_policy(self.out)
        command = [sys.executable, "-m", "stream.commands.main", "policy", "publish", str(path), "--by", PUBLISHER]
        result = subprocess.run(command, env=self.env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                timeout=self.options.timeout)
        if result.returncode != 0:
            raise DemoError(f"hotpath policy publish {path} failed (exit code {result.returncode}): "
                            f"{(result.stderr or result.stdout).strip()}")
        published = result.stdout.strip().splitlines()[-1]  # after the check's line per file
        self.say(f"  policy: {published}, muting one accepted risk ({path})")

    def start_children(self) -> None:
        started = time.monotonic()
        for name, command in (("worker", ["worker"]), ("deliver", ["deliver"])):
            self.children.append(Child(name, command, self.env, (self.out / f"{name}.log").resolve()))
        health = f"http://{self.settings.web_host}:{self.settings.web_port}/health"
        deadline = started + self.options.timeout
        while True:
            for child in self.children:
                if not child.alive():
                    raise DemoError(f"hotpath {child.name} exited with code {child.proc.returncode}; "
                                    f"its log ({child.log_path}) ends with:\n{child.tail()}")
            status = _http_status(health)
            if status == 200:
                break
            if time.monotonic() > deadline:
                raise DemoError(f"the worker was not ready within {self.options.timeout:.0f} s ({health} answers "
                                f"{status or 'nothing'}); see {self.out / 'worker.log'}")
            waited = time.monotonic() - started
            self.progress.update(f"  starting hotpath worker and hotpath deliver ... {waited:.0f} s")
            time.sleep(0.2)
        pids = ", ".join(f"{c.name} pid {c.proc.pid}" for c in self.children)
        self.progress.done(f"  started hotpath worker and hotpath deliver ({pids}) in "
                           f"{time.monotonic() - started:.1f} s; worker views on "
                           f"http://{self.settings.web_host}:{self.settings.web_port}/escalations")

    def produce(self, scenario: Scenario) -> None:
        from stream.kafka.clients import producer

        s = self.settings
        failures: list[str] = []

        def delivered(error, message) -> None:
            if error is not None:
                failures.append(str(error))

        client = producer(s)
        for asset in scenario.assets:
            _send(client, s.topic_assets, asset.id.encode(), orjson.dumps(asset.to_record()), delivered)
        client.flush(30)
        topics = {"findings": s.topic_findings, "traces": s.topic_traces, "alerts": s.topic_alerts}
        span = scenario.end - scenario.start
        speed = span / self.options.play_seconds if self.options.play_seconds > 0 else float("inf")
        sent: Counter[str] = Counter()
        totals = {"findings": len(scenario.findings), "traces": len(scenario.trace_batches),
                  "alerts": len(scenario.alerts)}
        began = time.monotonic()
        for ts, stream, key, value in scenario.timeline():
            due = began + (ts - scenario.start) / speed
            while time.monotonic() < due:
                client.poll(0)
                self.progress.update(self._play_line(ts, scenario, sent, totals))
                time.sleep(min(0.05, max(0.0, due - time.monotonic())))
            _send(client, topics[stream], key, value, delivered)
            sent[stream] += 1
            self.progress.update(self._play_line(ts, scenario, sent, totals))
        left = client.flush(60)
        if left or failures:
            raise DemoError(f"Kafka did not take every record ({left} unsent, {len(failures)} failed"
                            f"{': ' + failures[0] if failures else ''})")
        self.progress.done(self._play_line(scenario.end, scenario, sent, totals)
                           + f"  ({time.monotonic() - began:.1f} s)")

    def _play_line(self, ts: float, scenario: Scenario, sent: Counter[str], totals: dict[str, int]) -> str:
        share = (ts - scenario.start) / (scenario.end - scenario.start)
        bar = "#" * round(20 * share)
        clock = time.strftime("%H:%M:%S", time.gmtime(ts))
        escalations = len(self.watcher.snapshot()) if self.watcher else 0
        return (f"  playing {clock} [{bar:<20}] findings {sent['findings']}/{totals['findings']}  "
                f"traces {sent['traces']}/{totals['traces']}  alerts {sent['alerts']}/{totals['alerts']}  "
                f"escalation events {escalations}  webhooks {len(self.receiver.received())}")

    def settle(self) -> None:
        """Wait until the worker consumed everything and escalations and webhooks went quiet."""
        from stream.kafka.clients import consumer

        s = self.settings
        offsets = consumer(s, group_id=s.app_id, enable_auto_commit=False)
        deadline = time.monotonic() + self.options.timeout
        inputs = [s.topic_assets, s.topic_findings, s.topic_traces, s.topic_alerts]
        try:
            stage, ends = "inputs", _ends(offsets, inputs)
            quiet_since = time.monotonic()
            while time.monotonic() < deadline:
                self._check_children()
                if stage == "inputs" and _consumed(offsets, ends):
                    stage, ends = "entity events", _ends(offsets, [s.topic_entity_events])
                if stage == "entity events" and _consumed(offsets, ends):
                    stage, quiet_since = "quiet", time.monotonic()
                last = max(quiet_since, self.watcher.last_at if self.watcher else 0.0, self.receiver.last_event_at)
                quiet = time.monotonic() - last
                if stage == "quiet" and quiet >= self.options.settle_seconds:
                    self.progress.done(f"  settled: everything consumed, no new escalation or webhook for "
                                       f"{self.options.settle_seconds:.0f} s")
                    return
                self.progress.update(f"  waiting for the worker: {stage}; escalation events "
                                     f"{len(self.watcher.snapshot()) if self.watcher else 0}, "
                                     f"webhooks {len(self.receiver.received())}")
                time.sleep(0.2)
            self.progress.done(f"  the worker did not settle within {self.options.timeout:.0f} s "
                               f"(stage: {stage}); showing what arrived")
        finally:
            offsets.close()

    def _check_children(self) -> None:
        for child in self.children:
            if not child.alive():
                raise DemoError(f"hotpath {child.name} exited with code {child.proc.returncode}; its log "
                                f"({child.log_path}) ends with:\n{child.tail()}")

    def final_screen(self, scenario: Scenario, receiver_url: str) -> bool:
        events = self.watcher.snapshot() if self.watcher else []
        current = screen.latest(events)
        rows, muted = screen.ranked(current), screen.muted(current)
        expected = scenario.expected.under_demo_policy()
        width = max(100, shutil.get_terminal_size((120, 40)).columns)
        _write_ndjson(self.out / "escalations.ndjson", events)
        siem = _read_all(self.settings, self.settings.topic_siem)
        _write_ndjson(self.out / "siem.ocsf.ndjson", siem)
        audit = _read_all(self.settings, self.settings.topic_audit)
        _write_ndjson(self.out / "audit.ndjson", audit)
        received = self.receiver.received()
        _write_ndjson(self.out / "pagerduty.ndjson", received)
        names = screen.display_names(scenario.assets)
        lines = ["", "Escalations, most urgent first:", *screen.table(rows, width, names), ""]
        lines += ["Accepted risks, muted by the policy (scored and sent to the SIEM, paging no one):",
                  *(screen.accepted_risks(muted, width, names) or ["  none"]), ""]
        lines += screen.held_back(len(scenario.findings), rows, expected, suppressed=len(muted))
        story = len(scenario.expected.story_alerts)
        lines.append(f"Runtime alerts in: {len(scenario.alerts)} ({story} on services that touch misconfigured "
                     f"resources); traffic: {scenario.span_count:,} spans in {len(scenario.trace_batches)} "
                     f"OTLP records")
        suppressed_in_siem = sum(record.get("status_id") == OCSF_SUPPRESSED for record in siem)
        lines.append(f"SIEM: {len(siem)} OCSF Detection Findings on topic {self.settings.topic_siem}, "
                     f"{suppressed_in_siem} with status Suppressed (copy: {self.out / 'siem.ocsf.ndjson'})")
        lines.append(f"Audit trail: {len(audit)} records on topic {self.settings.topic_audit} "
                     f"(copy: {self.out / 'audit.ndjson'})")
        lines += screen.audit_trail(audit, width)
        incidents = self.receiver.incidents()
        actions = Counter(event["event_action"] for event in received)
        lines.append(f"PagerDuty (local Events API v2 receiver at {receiver_url}): {len(received)} events "
                     f"({actions['trigger']} trigger, {actions['resolve']} resolve), {len(incidents)} incidents "
                     f"by dedup_key (copy: {self.out / 'pagerduty.ndjson'})")
        example = incidents.get(rows[0]["escalation_uid"]) if rows else None
        if example is not None:
            lines.append(f"  e.g. the top one, {example.severity}: {example.summary}")
            lines.append(f"       dedup_key {example.dedup_key}, {example.triggers} trigger(s)")
        problems = screen.story_problems(expected, current, paged=incidents.keys())
        if problems:
            lines.append(f"Story check: {len(problems)} difference(s) from the scenario's expectation:")
            lines += [f"  - {problem}" for problem in problems[:10]]
        else:
            lines.append(f"Story check: the ranking matches the scenario's expectation ({len(rows)} escalated, "
                         f"internet-reached findings on top, {len(muted)} accepted risk suppressed and not "
                         f"paged, {len(scenario.findings) - len(rows) - len(muted)} held back).")
        lines.append(f"Logs and outputs: {self.out}")
        self.say("\n".join(lines))
        return not problems

    def wait_for_interrupt(self) -> None:
        """Keep the worker's views up until Ctrl-C, which here is the normal way to end."""
        self.say(f"Still running: http://{self.settings.web_host}:{self.settings.web_port}/escalations "
                 f"(Ctrl-C to stop)")
        try:
            while True:
                self._check_children()
                time.sleep(0.5)
        except KeyboardInterrupt:
            self.say("")

    # -- clean-up ---------------------------------------------------------------------------

    def shutdown(self) -> None:
        steps = [("stop the children", self._stop_children), ("stop the watcher", self._stop_watcher),
                 ("stop the receiver", self.receiver.stop), ("delete the run's topics", self._delete_topics),
                 ("stop the broker", self._stop_broker)]
        for what, step in steps:
            try:
                step()
            except Exception as exc:  # clean-up goes on: one failure must not leave the rest running
                print(f"hotpath demo: could not {what}: {exc}", file=sys.stderr)

    def _stop_children(self) -> None:
        if self.children:
            self.say("stopping hotpath deliver and hotpath worker ...")
        for child in reversed(self.children):
            child.stop()
        self.children = []

    def _stop_watcher(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None

    def _delete_topics(self) -> None:
        if not self.topics_created or self.options.keep_topics:
            return
        from stream.kafka.clients import admin

        client = admin(self.settings)
        prefixes = (f"demo-{self.run_id}.", f"{self.settings.app_id}-")
        names = [name for name in client.list_topics(timeout=10).topics if name.startswith(prefixes)]
        for future in client.delete_topics(names, operation_timeout=30).values() if names else ():
            future.result()
        self.topics_created = False

    def _stop_broker(self) -> None:
        if self.started_broker:
            self.say("stopping the local Kafka broker the demo started ...")
            subprocess.run([*self.broker_command, "down"], cwd=ROOT, check=False)
            if self.broker_dir is not None:  # a throwaway broker's data goes with it
                shutil.rmtree(self.broker_dir, ignore_errors=True)
            self.started_broker = False


def _broker_answers(settings: Settings, timeout: float = 3.0) -> bool:
    from confluent_kafka import KafkaException

    from stream.kafka.clients import admin

    try:
        admin(settings).list_topics(timeout=timeout)
        return True
    except KafkaException:
        return False


def _send(client, topic: str, key: bytes | None, value: bytes, callback) -> None:
    while True:
        try:
            client.produce(topic, value=value, key=key, on_delivery=callback)
            return
        except BufferError:  # the local queue is full: let librdkafka send some first
            client.poll(0.1)


def _http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


def _ends(client, topics: list[str]) -> dict[tuple[str, int], int]:
    from confluent_kafka import TopicPartition

    metadata = client.list_topics(timeout=10)
    ends = {}
    for topic in topics:
        for partition in metadata.topics[topic].partitions:
            ends[(topic, partition)] = client.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1]
    return ends


def _consumed(client, ends: dict[tuple[str, int], int]) -> bool:
    """True when the group's committed offsets reached ``ends`` on every partition with records."""
    from confluent_kafka import TopicPartition

    wanted = [TopicPartition(topic, partition) for (topic, partition), end in ends.items() if end > 0]
    if not wanted:
        return True
    committed = client.committed(wanted, timeout=10)
    return all(tp.offset >= ends[(tp.topic, tp.partition)] for tp in committed)


def _read_all(settings: Settings, topic: str) -> list[dict[str, Any]]:
    """Every JSON value of ``topic`` up to its current end."""
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    from stream.kafka.clients import consumer

    client = consumer(settings, group_id=f"{settings.app_id}-demo-read", enable_auto_commit=False)
    try:
        ends = {p: end for (_, p), end in _ends(client, [topic]).items() if end > 0}
        client.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        values: list[dict[str, Any]] = []
        positions = dict.fromkeys(ends, 0)
        deadline = time.monotonic() + 30
        while any(positions[p] < ends[p] for p in ends) and time.monotonic() < deadline:
            for message in client.consume(500, timeout=0.5):
                if message.error() is None:
                    positions[message.partition()] = message.offset() + 1
                    if message.value() is not None:
                        values.append(orjson.loads(message.value()))
        return values
    finally:
        client.close()


def _write_ndjson(path: Path, values: list[dict[str, Any]]) -> None:
    path.write_bytes(b"".join(orjson.dumps(value) + b"\n" for value in values))
