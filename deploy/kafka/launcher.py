#!/usr/bin/env python3
"""Run a single-node Apache Kafka (KRaft, broker+controller) on loopback, without Docker.

The broker's jars come from Maven Central through ``deploy/kafka/pom.xml`` (fetched once into
``.cache/kafka``). State lives in a run folder (default ``.run/kafka``): ``server.properties``,
the log directory, ``kafka.pid`` and ``kafka.log``.

    python deploy/kafka/launcher.py up [--port 9092]   # start, or report the one already running
    python deploy/kafka/launcher.py down               # stop cleanly (SIGTERM, then SIGKILL)
    python deploy/kafka/launcher.py status

Standard library only, so it runs before the project's virtualenv exists.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DEFAULT_VERSION = "4.1.1"
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0


class LauncherError(RuntimeError):
    """A failure the user can act on; printed as one line."""


def kafka_version() -> str:
    return os.environ.get("HOTPATH_KAFKA_VERSION", DEFAULT_VERSION)


def libs_dir(version: str) -> Path:
    cache = Path(os.environ.get("HOTPATH_KAFKA_CACHE", ROOT / ".cache" / "kafka"))
    return cache / f"libs-{version}"


def fetch_jars(version: str) -> Path:
    """Copy the broker's runtime jars from Maven Central into the cache, once."""
    libs = libs_dir(version)
    if (libs / f"kafka_2.13-{version}.jar").exists():
        return libs
    if shutil.which("mvn") is None:
        raise LauncherError("Maven (mvn) is not on PATH: install Maven 3.8+ to fetch the Kafka jars")
    print(f"fetching Apache Kafka {version} jars from Maven Central into {libs} (once) ...", flush=True)
    started = time.monotonic()
    result = subprocess.run(
        ["mvn", "-q", "-B", "-f", str(HERE / "pom.xml"), "dependency:copy-dependencies",
         f"-Dkafka.version={version}", f"-Dkafka.libs={libs}"],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        shutil.rmtree(libs, ignore_errors=True)
        tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
        raise LauncherError(f"mvn could not fetch Kafka {version}: {' | '.join(tail)}")
    print(f"fetched in {time.monotonic() - started:.1f}s", flush=True)
    return libs


def java_command() -> str:
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java:
        raise LauncherError("java is not on PATH: install a JDK 17+ (or set JAVA_HOME)")
    return java


def server_properties(run: Path, port: int, controller_port: int, extra: list[str]) -> Path:
    props = run / "server.properties"
    lines = [
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}",
        f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        f"log.dirs={run / 'data'}",
        "num.partitions=1",
        "offsets.topic.replication.factor=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
        "auto.create.topics.enable=true",
        "log.retention.hours=24",
        "log.segment.bytes=67108864",
        *extra,
    ]
    props.write_text("\n".join(lines) + "\n")
    return props


def log4j_config(run: Path) -> Path:
    """Send the broker's log to kafka.log in the run folder, quietly."""
    cfg = run / "log4j2.properties"
    cfg.write_text(
        "status = warn\n"
        "appender.file.type = File\n"
        "appender.file.name = file\n"
        f"appender.file.fileName = {run / 'kafka.log'}\n"
        "appender.file.layout.type = PatternLayout\n"
        "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
        "rootLogger.level = INFO\n"
        "rootLogger.appenderRef.file.ref = file\n"
        "logger.kafka.name = kafka\nlogger.kafka.level = WARN\n"
        "logger.apache.name = org.apache.kafka\nlogger.apache.level = WARN\n"
        "logger.started.name = kafka.server.KafkaRaftServer\nlogger.started.level = INFO\n"
    )
    return cfg


def metadata_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when a broker answers a Kafka ApiVersions request on host:port.

    A raw request keeps the launcher free of client libraries: size, api_key 18, version 0,
    correlation id, client id; the answer must echo the correlation id with error code 0.
    """
    client_id = b"hotpath-launcher"
    body = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(struct.pack(">i", len(body)) + body)
            header = _recv_exactly(sock, 4)
            (size,) = struct.unpack(">i", header)
            answer = _recv_exactly(sock, size)
    except OSError:
        return False
    correlation_id, error_code = struct.unpack(">ih", answer[:6])
    return correlation_id == 7 and error_code == 0


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise OSError("connection closed")
        data += chunk
    return data


def read_pid(run: Path) -> int | None:
    pid_file = run / "kafka.pid"
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def cluster_id() -> str:
    """A KRaft cluster id as ``kafka-storage random-uuid`` makes it (URL-safe base64 of 16 random bytes,
    never starting with '-'), without paying for a JVM start."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def port_is_free(port: int) -> bool:
    """Whether a server could listen on ``port``. Asked as the broker binds (SO_REUSEADDR, Java's default): a broker
    stopped a moment ago leaves its connections in TIME_WAIT on the port, which would refuse a plain bind for a
    minute, yet the broker can listen there again."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def controller_port_for(run: Path, port: int, requested: int | None) -> int:
    """The KRaft controller's port. A formatted log dir records the controller's endpoint, so a restart
    reuses the one in ``server.properties``; a new run takes port+1, or any free port when that is taken."""
    if requested:
        return requested
    props = run / "server.properties"
    if (run / "data" / "meta.properties").exists() and props.exists():
        found = re.search(r"^controller\.quorum\.bootstrap\.servers=127\.0\.0\.1:(\d+)$", props.read_text(), re.M)
        if found:
            return int(found.group(1))
    if port_is_free(port + 1):
        return port + 1
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cause(text: str) -> str | None:
    """The most telling line of a Java failure: the last exception or ERROR line, stack frames skipped."""
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("at ")]
    telling = [line for line in lines if "Exception" in line or " ERROR " in line or line.startswith("Error")]
    found = (telling or lines or [None])[-1]
    return found[:300] if found else None


def last_error(run: Path) -> str:
    """Why the broker stopped, from its log (kafka.log) or its stdout (kafka.out), as one line."""
    for name in ("kafka.log", "kafka.out"):
        try:
            found = cause((run / name).read_text(errors="replace"))
        except OSError:
            continue
        if found:
            return found
    return f"see {run / 'kafka.log'}"


def up(run: Path, port: int, extra: list[str], requested_controller_port: int | None = None) -> int:
    pid = read_pid(run)
    if pid is not None:
        if metadata_answers("127.0.0.1", port):
            print(f"Kafka already running: pid {pid}, bootstrap 127.0.0.1:{port}")
            return 0
        raise LauncherError(f"a Kafka process (pid {pid}) is running but 127.0.0.1:{port} does not answer; "
                            f"run 'make kafka-down' first")
    if metadata_answers("127.0.0.1", port):
        print(f"a Kafka broker not started by this launcher already answers on 127.0.0.1:{port}; using it")
        return 0
    if not port_is_free(port):
        raise LauncherError(f"127.0.0.1:{port} is taken by a program that is not a Kafka broker: "
                            f"stop it or choose another --port")
    version = kafka_version()
    libs = fetch_jars(version)
    java = java_command()
    run.mkdir(parents=True, exist_ok=True)
    controller_port = controller_port_for(run, port, requested_controller_port)
    if not port_is_free(controller_port):
        raise LauncherError(f"the controller port 127.0.0.1:{controller_port} is taken: free it or pass "
                            f"--controller-port (a formatted run folder keeps its controller port)")
    props = server_properties(run, port, controller_port, extra)
    common = ["-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={log4j_config(run)}",
              "-cp", os.pathsep.join(str(p) for p in sorted(libs.glob("*.jar")))]
    started = time.monotonic()
    if not (run / "data" / "meta.properties").exists():
        # A short-lived tool: C1-only JIT and the serial GC start it about a second sooner.
        fmt = subprocess.run([java, "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", *common,
                              "kafka.tools.StorageTool", "format", "--standalone", "-t", cluster_id(),
                              "-c", str(props)], capture_output=True, text=True)
        if fmt.returncode != 0:
            raise LauncherError(f"could not format the KRaft log dir: {cause(fmt.stderr + fmt.stdout)}")
    with open(run / "kafka.out", "ab") as out:
        proc = subprocess.Popen([java, "-Xms256m", "-Xmx1g", "-XX:+UseG1GC", *common, "kafka.Kafka", str(props)],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    (run / "kafka.pid").write_text(str(proc.pid))
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            (run / "kafka.pid").unlink(missing_ok=True)
            raise LauncherError(f"Kafka exited with code {proc.returncode} during start-up: {last_error(run)}")
        if metadata_answers("127.0.0.1", port, timeout=0.5):
            print(f"Kafka {version} up in {time.monotonic() - started:.1f}s: pid {proc.pid}, "
                  f"bootstrap 127.0.0.1:{port}, logs in {run}")
            return 0
        time.sleep(0.2)
    stop(proc.pid)
    raise LauncherError(f"Kafka did not answer on 127.0.0.1:{port} within {START_TIMEOUT_S:.0f}s: {last_error(run)}")


def stop(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        # Reap it if it is our child; otherwise keep polling.
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.1)
    os.killpg(pid, signal.SIGKILL)


def down(run: Path) -> int:
    pid = read_pid(run)
    if pid is None:
        print("Kafka is not running")
        (run / "kafka.pid").unlink(missing_ok=True)
        return 0
    stop(pid)
    (run / "kafka.pid").unlink(missing_ok=True)
    print(f"Kafka stopped (pid {pid})")
    return 0


def status(run: Path, port: int) -> int:
    pid = read_pid(run)
    answering = metadata_answers("127.0.0.1", port)
    print(f"pid={pid or '-'} answering={'yes' if answering else 'no'} bootstrap=127.0.0.1:{port}")
    return 0 if answering else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "status", "fetch"])
    parser.add_argument("--port", type=int, default=int(os.environ.get("HOTPATH_KAFKA_PORT", 9092)))
    parser.add_argument("--run-dir", type=Path, default=Path(os.environ.get("HOTPATH_KAFKA_RUN_DIR",
                                                                           ROOT / ".run" / "kafka")))
    parser.add_argument("--controller-port", type=int,
                        default=int(os.environ.get("HOTPATH_KAFKA_CONTROLLER_PORT", 0)) or None,
                        help="KRaft controller port (default: the run folder's, else port+1, else any free port)")
    parser.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                        help="extra server.properties line (repeatable)")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            return up(args.run_dir, args.port, args.config, args.controller_port)
        if args.command == "down":
            return down(args.run_dir)
        if args.command == "fetch":
            print(fetch_jars(kafka_version()))
            return 0
        return status(args.run_dir, args.port)
    except LauncherError as exc:
        print(f"kafka launcher: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
