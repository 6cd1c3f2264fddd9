"""Run real hotpath processes (`hotpath worker`, `hotpath deliver`) from tests, and read topics back.

Each process gets the test's settings as HOTPATH_* variables, its own web port and data folder,
and its output in a log file that a failing test prints.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from paths import ROOT

from stream.demo.ports import free_port
from stream.kafka.clients import consumer
from stream.settings import Settings

# Tests and the benchmark play recorded data, dated in the past: the demo scenario on 2025-06-03 (so that a
# seed gives the same bytes anywhere), sample alerts from 2017 on. Workers they start believe evidence that
# old, unless a test chooses HOTPATH_MAX_EVENT_AGE_S itself (tests/unit/ingest/test_event_time.py checks the default).
TEST_DATA_MAX_AGE_S = 30 * 365 * 24 * 3600.0


def settings_env(settings: Settings, **extra: Any) -> dict[str, str]:
    """The environment that makes a child process read ``settings`` (plus ``extra`` overrides)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTPATH_")}
    values = settings.model_dump(mode="json", exclude_none=True)
    if "max_event_age_s" not in settings.model_fields_set:
        values["max_event_age_s"] = TEST_DATA_MAX_AGE_S
    values.update(extra)
    for name, value in values.items():
        if name == "sasl_password":
            value = settings.sasl_password.get_secret_value()
        env[f"HOTPATH_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    return env


class HotpathProcess:
    """One ``hotpath <command>`` child process; a context manager that always cleans up."""

    def __init__(self, command: str, settings: Settings, log_dir: Path, name: str | None = None, **extra: Any):
        self.name = name or command
        self.web_port = free_port()
        self.log_path = log_dir / f"{self.name}.log"
        # The port serves whichever command runs: the worker's views or deliver's health and metrics.
        self.env = settings_env(settings, web_port=self.web_port, deliver_web_port=self.web_port,
                                data_dir=str(log_dir / f"{self.name}-data"), **extra)
        self.command = command
        self.proc: subprocess.Popen | None = None

    def start(self) -> HotpathProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "stream.commands.main", self.command], env=self.env,
                                     cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Poll ``/health`` until the worker says it is ready (partitions recovered, context read)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/health", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"{self.name} not ready after {timeout}s:\n{self.log_tail()}")

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}{path}", timeout=5) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no final commit, as a crash would be."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.proc.returncode

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def __enter__(self) -> HotpathProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def read_topic(settings: Settings, topic: str, *, until: callable = None, timeout: float = 60.0,
               idle: float | None = None) -> list[tuple[bytes | None, Any]]:
    """Read ``topic`` from the beginning as (key, JSON value) pairs.

    Stops when ``until(records)`` is true, when nothing new arrived for ``idle`` seconds (if given),
    or at ``timeout``.
    """
    client = consumer(settings, group_id=f"test-reader-{time.monotonic_ns()}", enable_auto_commit=False)
    client.subscribe([topic])
    records: list[tuple[bytes | None, Any]] = []
    deadline = time.monotonic() + timeout
    last_new = time.monotonic()
    try:
        while time.monotonic() < deadline:
            message = client.poll(0.5)
            if message is not None and not message.error():
                records.append((message.key(), json.loads(message.value())))
                last_new = time.monotonic()
                continue
            if until is not None and until(records):
                break
            if idle is not None and records and time.monotonic() - last_new > idle:
                break
    finally:
        client.close()
    return records


def final_states(events: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """What a subscriber ends up believing per finding: ("escalated" or "resolved", priority).

    The path there may differ (escalated at P2 then updated to P1, or escalated at P1 at once) with
    the order in which shared context reaches a worker; the end must not.
    """
    latest: dict[str, dict[str, Any]] = {}
    for event in events:
        known = latest.get(event["finding_uid"])
        if known is None or event["version"] > known["version"]:
            latest[event["finding_uid"]] = event
    return {uid: ("resolved" if e["state"] == "resolved" else "escalated", e["priority"])
            for uid, e in latest.items()}


Record = tuple[str, bytes | None, bytes]  # (topic, key, value)


def scenario_records(settings: Settings, scenario) -> list[Record]:
    """A demo scenario as the records of the input topics: assets first, the rest in event-time order."""
    topics = {"findings": settings.topic_findings, "traces": settings.topic_traces, "alerts": settings.topic_alerts}
    records: list[Record] = [(settings.topic_assets, asset.id.encode(), json.dumps(asset.to_record()).encode())
                             for asset in scenario.assets]
    records += [(topics[stream], key, value) for _, stream, key, value in scenario.timeline()]
    return records


def publish(settings: Settings, records: list[Record], over_s: float = 0.0,
            played: Callable[[int], None] | None = None) -> None:
    """Produce ``records`` in order; ``over_s`` spreads them evenly over that many seconds, so a fault can
    land in the middle of the stream. ``played(n)`` hears how many have been handed to the producer."""
    from stream.kafka.clients import producer

    client = producer(settings)
    started = time.monotonic()
    for index, (topic, key, value) in enumerate(records):
        wait = started + over_s * index / len(records) - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        client.produce(topic, key=key, value=value)
        client.poll(0)
        if played is not None:
            played(index + 1)
    if client.flush(60) != 0:
        raise AssertionError("could not deliver the records to Kafka")


def publish_scenario(settings: Settings, scenario) -> None:
    """Produce a demo scenario onto the input topics, assets first, the rest in event-time order."""
    publish(settings, scenario_records(settings, scenario))


class Player(threading.Thread):
    """Plays records onto their topics over ``over_s`` seconds on a thread, while the test injects a fault.

    ``played`` is how many records have been produced so far; :meth:`finish` waits for the rest and
    re-raises anything that went wrong on the thread.
    """

    def __init__(self, settings: Settings, records: list[Record], over_s: float) -> None:
        super().__init__(name="scenario-player", daemon=True)
        self.settings, self.records, self.over_s = settings, records, over_s
        self.played = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            publish(self.settings, self.records, self.over_s, played=self._count)
        except BaseException as exc:  # handed to the test by finish()
            self.error = exc

    def _count(self, played: int) -> None:
        self.played = played

    def wait_for_share(self, share: float, timeout: float = 120.0) -> None:
        """Block until ``share`` (0..1) of the records have been produced."""
        deadline = time.monotonic() + timeout
        while self.played < share * len(self.records):
            if not self.is_alive() or time.monotonic() > deadline:
                raise AssertionError(f"the player stopped at {self.played}/{len(self.records)} records: {self.error}")
            time.sleep(0.05)

    def finish(self, timeout: float = 120.0) -> None:
        self.join(timeout)
        if self.error is not None:
            raise self.error
        if self.is_alive():
            raise AssertionError(f"the player is still playing after {timeout}s")


def run_hotpath(command: list[str], settings: Settings, tmp_path: Path) -> tuple[int, list[str]]:
    """``hotpath COMMAND`` in a child process with ``settings``: its exit code and non-blank output lines."""
    env = settings_env(settings, data_dir=str(tmp_path / "cli-data"))
    done = subprocess.run([sys.executable, "-m", "stream.commands.main", *command], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    return done.returncode, [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]


def assert_exactly_once(events: list[dict]) -> None:
    """Per finding, versions 1..n each exactly once: none lost (a gap), none emitted twice."""
    versions: dict[str, list[int]] = defaultdict(list)
    for event in events:
        versions[event["finding_uid"]].append(event["version"])
    for uid, seen in versions.items():
        assert sorted(seen) == list(range(1, max(seen) + 1)), f"{uid}: versions {sorted(seen)}"


def metric(worker: HotpathProcess, name: str) -> dict[str, float]:
    """One counter of the worker's /metrics by label value (empty while the worker does not answer)."""
    try:
        status, body = worker.get("/metrics")
    except OSError:
        return {}
    if status != 200:
        return {}
    values = {}
    for line in body.decode().splitlines():
        if line.startswith(name + "{"):
            label, value = line[len(name) + 1:].rsplit(" ", 1)
            values[label.split('"')[1]] = float(value)
    return values


def records_in(worker: HotpathProcess) -> float:
    """How many input records the worker has read, by its own count."""
    return sum(metric(worker, "hotpath_records_in_total").values())


def owned_partitions(worker: HotpathProcess) -> list[int] | None:
    """The entity partitions the worker says it owns on /health, also while it is not ready (a worker the
    group leaves without entity partitions never is); None while it does not answer."""
    try:
        status, body = worker.get("/health")
    except OSError:
        return None
    return json.loads(body).get("partitions") if status in (200, 503) else None
