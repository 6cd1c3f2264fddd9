"""Run real hotpath processes (`hotpath worker`, `hotpath deliver`) from tests, and read topics back.

Each process gets the test's settings as HOTPATH_* variables, its own web port and data folder,
and its output in a log file that a failing test prints.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from stream.kafka import consumer
from stream.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def settings_env(settings: Settings, **extra: Any) -> dict[str, str]:
    """The environment that makes a child process read ``settings`` (plus ``extra`` overrides)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTPATH_")}
    values = settings.model_dump(mode="json", exclude_none=True)
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
        self.env = settings_env(settings, web_port=self.web_port, data_dir=str(log_dir / f"{self.name}-data"),
                                **extra)
        self.command = command
        self.proc: subprocess.Popen | None = None

    def start(self) -> HotpathProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "stream.cli", self.command], env=self.env, cwd=ROOT,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
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


def publish_scenario(settings: Settings, scenario) -> None:
    """Produce a demo scenario onto the input topics, assets first, the rest in event-time order."""
    from stream.kafka import producer

    topics = {"findings": settings.topic_findings, "traces": settings.topic_traces, "alerts": settings.topic_alerts}
    client = producer(settings)
    for asset in scenario.assets:
        client.produce(settings.topic_assets, key=asset.id.encode(), value=json.dumps(asset.to_record()).encode())
    for _, stream, key, value in scenario.timeline():
        client.produce(topics[stream], key=key, value=value)
        client.poll(0)
    if client.flush(30) != 0:
        raise AssertionError("could not deliver the scenario to Kafka")
