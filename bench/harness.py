"""What every measurement shares: the scenario (built once, cached), fresh topics per run, worker
processes and their metrics, and the progress lines.

Worker processes are the tests' own :class:`workers.HotpathProcess` (``tests/support/workers.py``), so the
benchmark runs the worker exactly as the integration tests do.
"""

from __future__ import annotations

import os
import pickle
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import orjson

from stream.demo.scenario import Scenario, build_scenario, workers_for
from stream.kafka.clients import admin, producer
from stream.kafka.topics import TOPIC_SETTINGS, apply_topics
from stream.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))
from workers import (  # noqa: E402, F401  (tests/support is not a package; re-exported)
    TEST_DATA_MAX_AGE_S,
    HotpathProcess,
    Record,
    final_states,
    read_topic,
)

CACHE_DIR = ROOT / ".cache" / "bench"
LOG_DIR = ROOT / ".run" / "bench"
CACHE_FORMAT = 1  # bump when what a cached scenario holds changes
POLL_S = 0.1
STALL_S = 60.0
STARTED = time.monotonic()
PREFIX = "HOTPATH_"


def say(text: str) -> None:
    """A progress line, stamped with the time since the benchmark started."""
    print(f"[{time.monotonic() - STARTED:6.1f}s] {text}", flush=True)


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def cached_scenario(seed: int, scale: int, minutes: int) -> Scenario:
    """The demo scenario for (seed, scale, minutes), generated once (a minute at scale 50) and then read back."""
    path = CACHE_DIR / f"scenario-v{CACHE_FORMAT}-seed{seed}-scale{scale}-{minutes}min.pickle"
    if path.exists():
        return pickle.loads(path.read_bytes())
    say(f"generating the scenario (seed {seed}, scale {scale}, {minutes} min) with opentelemetry-sdk; "
        f"cached in {path.relative_to(ROOT)}")
    scenario = build_scenario(seed=seed, scale=scale, minutes=minutes, workers=workers_for(scale, minutes))
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_bytes(pickle.dumps(scenario, protocol=pickle.HIGHEST_PROTOCOL))
    partial.replace(path)
    return scenario


@contextmanager
def fresh_topics(base: Settings, label: str) -> Iterator[Settings]:
    """Settings whose every topic and app id are new (created from topics.yaml), deleted again afterwards."""
    run = f"bench-{label}-{uuid.uuid4().hex[:8]}"
    topics = {name: f"{run}.{getattr(base, name)}" for name in TOPIC_SETTINGS}
    settings = base.model_copy(update={"app_id": run, **topics})
    apply_topics(settings)
    try:
        yield settings
    finally:
        client = admin(settings)
        names = [name for name in client.list_topics(timeout=10).topics if name.startswith(run)]
        for future in client.delete_topics(names, operation_timeout=30).values() if names else ():
            try:
                future.result()
            except Exception:  # best effort: a leftover topic only costs disk until retention
                pass


def publish(settings: Settings, records: Iterable[Record], client=None) -> int:
    """Write (topic, key, value) records as fast as the broker takes them; returns how many.

    Records without a key are spread over the partitions one by one, as the Collector's exporter
    spreads unkeyed batches, not in runs (librdkafka's sticky partitioning would put a whole burst
    on one partition and leave a second worker idle). Writing in several calls, pass one ``client``
    (:func:`publisher`) to all: a producer of its own costs a call half a second.
    """
    client = client or publisher(settings)
    count = 0
    for topic, key, value in records:
        while True:
            try:
                client.produce(topic, key=key, value=value)
                break
            except BufferError:  # the local queue is full: let librdkafka send some first
                client.poll(0.05)
        client.poll(0)
        count += 1
    if client.flush(60) != 0:
        raise RuntimeError("the broker did not take every record within 60s")
    return count


def publisher(settings: Settings):
    """The producer :func:`publish` writes with."""
    return producer(settings, linger_ms=20, sticky_partitioning_linger_ms=0)


def asset_records(settings: Settings, scenario: Scenario) -> list[Record]:
    """The asset inventory, which a deployment holds before its workers start."""
    return [(settings.topic_assets, asset.id.encode(), orjson.dumps(asset.to_record())) for asset in scenario.assets]


def finding_records(settings: Settings, scenario: Scenario) -> list[Record]:
    """The CSPM findings, written once the workers are up: records in flight while a worker joins its
    group can be dropped by Faust (faust-streaming issue 596) and would never be correlated."""
    return [(settings.topic_findings, None, value) for value in scenario.findings]


def traffic_records(settings: Settings, scenario: Scenario) -> list[Record]:
    """Trace batches and runtime alerts in event-time order."""
    topics = {"traces": settings.topic_traces, "alerts": settings.topic_alerts}
    return [(topics[stream], key, value) for _, stream, key, value in scenario.timeline() if stream in topics]


def metrics(worker: HotpathProcess) -> dict[str, float]:
    """The worker's ``/metrics`` as {'name{labels}': value}."""
    status, body = worker.get("/metrics")
    if status != 200:
        raise RuntimeError(f"{worker.name} answered /metrics with {status}")
    values = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def total(samples: list[dict[str, float]], prefix: str) -> float:
    """The sum of every series starting with ``prefix`` over all workers' samples."""
    return sum(value for sample in samples for name, value in sample.items() if name.startswith(prefix))


def records_in(topic: str) -> str:
    """The worker metric counting the records it read from ``topic``."""
    return f'hotpath_records_in_total{{topic="{topic}"}}'


def caught_up(samples: list[dict[str, float]], wanted: dict[str, float]) -> bool:
    """True when the workers have read ``wanted`` records per metric and correlated every entity event they made."""
    read_all = all(total(samples, name) >= count for name, count in wanted.items())
    correlated = total(samples, "hotpath_entity_events_correlated_total")
    return read_all and correlated >= total(samples, "hotpath_entity_events_total")


@contextmanager
def running_workers(settings: Settings, count: int, label: str, **extra) -> Iterator[list[HotpathProcess]]:
    """``count`` hotpath workers in one consumer group, all ready (partitions assigned) together."""
    log_dir = LOG_DIR / settings.app_id
    log_dir.mkdir(parents=True, exist_ok=True)
    extra = {**process_variables(), **extra}
    with ExitStack() as stack:
        workers = [stack.enter_context(HotpathProcess("worker", settings, log_dir, name=f"{label}-{index}", **extra))
                   for index in range(count)]
        wait_until(lambda: all(_ready(worker) for worker in workers), 120, f"{count} worker(s) ready", workers,
                   watch_progress=False)
        yield workers


def process_variables() -> dict[str, str]:
    """This process's HOTPATH_* variables that are no setting (such as the OTLP decoder's choice), which the
    workers' environment, made from the settings, would otherwise leave out."""
    return {name.removeprefix(PREFIX).lower(): value for name, value in os.environ.items()
            if name.startswith(PREFIX) and name.removeprefix(PREFIX).lower() not in Settings.model_fields}


def _ready(worker: HotpathProcess) -> bool:
    try:
        return worker.get("/health")[0] == 200
    except OSError:
        return False


def wait_until(condition: Callable[[], bool], timeout: float, what: str,
               workers: Iterable[HotpathProcess] = (), watch_progress: bool = True) -> float:
    """Poll ``condition`` every POLL_S; returns the monotonic time it first held.

    With ``watch_progress`` it gives up early when the hotpath workers' correlated-event count stands
    still for STALL_S: a worker that lost events (Faust drops in-flight ones on a rebalance,
    faust-streaming issue 596) would never get there.
    """
    deadline = time.monotonic() + timeout
    last_progress, moved_at = None, time.monotonic()
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        for worker in workers:
            if worker.proc.poll() is not None:
                raise RuntimeError(f"{worker.name} exited with {worker.proc.returncode}:\n{worker.log_tail()}")
        progress = total([metrics(worker) for worker in workers], "hotpath_entity_events_correlated_total") \
            if watch_progress else None
        if progress != last_progress:
            last_progress, moved_at = progress, time.monotonic()
        elif watch_progress and time.monotonic() - moved_at > STALL_S:
            raise TimeoutError(f"not {what}: no entity event correlated for {STALL_S:.0f}s")
        time.sleep(POLL_S)
    tails = "\n".join(worker.log_tail(20) for worker in workers)
    raise TimeoutError(f"not {what} after {timeout:.0f}s\n{tails}")
