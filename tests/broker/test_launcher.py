"""``deploy/kafka/launcher.py`` as a developer uses it: up, up again, down, restart, and a port clash.

Each test uses its own run folder and free port, so it never touches the session's broker.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import psutil
import pytest
from brokers import launcher

from stream.demo.ports import free_port

pytestmark = pytest.mark.kafka


def processes_using(run_dir: Path) -> list[psutil.Process]:
    """Live processes whose command line mentions the run folder (the broker's JVM does)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(str(run_dir) in arg for arg in process.info["cmdline"] or ()):
            found.append(process)
    return found


def test_up_twice_reports_the_running_broker_and_down_leaves_nothing(tmp_path):
    run_dir, port = tmp_path / "kafka", free_port()
    with socket.socket() as taken:
        # The controller's usual port (port+1) is busy: the launcher must pick another one.
        taken.bind(("127.0.0.1", port + 1))
        taken.listen()
        first = launcher("up", run_dir, port)
    assert first.returncode == 0, first.stderr
    pid = int(re.search(r"pid (\d+)", first.stdout).group(1))
    assert f"bootstrap 127.0.0.1:{port}" in first.stdout

    again = launcher("up", run_dir, port)
    assert again.returncode == 0
    assert again.stdout.strip() == f"Kafka already running: pid {pid}, bootstrap 127.0.0.1:{port}"
    assert launcher("status", run_dir, port).returncode == 0

    stopped = launcher("down", run_dir)
    assert stopped.stdout.strip() == f"Kafka stopped (pid {pid})"
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert processes_using(run_dir) == []
    assert launcher("status", run_dir, port).returncode == 1
    assert launcher("down", run_dir).stdout.strip() == "Kafka is not running"

    # A restart reuses the formatted log dir, whose quorum remembers the controller's port.
    restarted = launcher("up", run_dir, port)
    assert restarted.returncode == 0, restarted.stderr
    launcher("down", run_dir)
    assert processes_using(run_dir) == []


def test_a_port_held_by_something_else_fails_in_one_line_before_starting_java(tmp_path):
    run_dir, port = tmp_path / "kafka", free_port()
    with socket.socket() as squatter:
        # Something that is not Kafka holds the port: it accepts connections but never answers.
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        result = launcher("up", run_dir, port)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"kafka launcher: 127.0.0.1:{port} is taken by a program that is not a Kafka broker: "
        f"stop it or choose another --port"]
    assert processes_using(run_dir) == []


def test_a_bad_broker_setting_fails_in_one_line_with_kafkas_reason(tmp_path):
    run_dir = tmp_path / "kafka"
    result = launcher("up", run_dir, free_port(), extra=["--config", "num.network.threads=0"])
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kafka launcher: "), result.stderr
    assert "num.network.threads" in lines[0]
    assert processes_using(run_dir) == []
