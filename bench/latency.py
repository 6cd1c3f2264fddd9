"""Latency: from a trace batch being produced to the escalation it triggers appearing on ``hotpath.escalations``.

The worker holds the scenario's asset context and findings plus one critical Prowler finding per
probe bucket, which nothing touches yet. The scenario's trace batches are then played at a fixed
offered load (spans per second), and a few times a second a probe goes out with them: a real SDK
trace in which an internet-facing ``payments-api`` reads one probe bucket. Its first traffic makes
the probe's finding escalate, so the probe's latency is the time from producing it to seeing that
escalation, read by a consumer that follows the topic all along.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.harness import (
    Record,
    asset_records,
    caught_up,
    finding_records,
    fresh_topics,
    metrics,
    publish,
    records_in,
    running_workers,
    wait_until,
)
from stream.demo.estate import PROWLER, bucket
from stream.demo.records import prowler_finding
from stream.demo.scenario import Scenario
from stream.demo.tracegen import TraceBuilder, aws_call, encode_batch
from stream.kafka.clients import consumer, producer
from stream.settings import Settings

PROBES_PER_S = 4
SETTLE_S = 15.0  # how long the last probes may take before they count as lost
INTERNET_CLIENT = "81.2.69.142"


@dataclass(frozen=True)
class Probe:
    finding_uid: str
    finding: bytes
    trace: bytes


@dataclass(frozen=True)
class Latency:
    p50_ms: float
    p99_ms: float
    max_ms: float
    probes: int
    lost: int


def make_probe(name: str, event_time: float) -> Probe:
    """A critical finding on a fresh bucket, and the trace that first exercises it at ``event_time``."""
    resource = bucket(name)
    record = prowler_finding(PROWLER["s3_bucket_public_access"], resource, event_time - 60)
    builder = TraceBuilder()
    root = builder.server_span("payments-api", "GET /v1/statements", start=event_time, client_address=INTERNET_CLIENT)
    builder.client_span("payments-api", "S3.GetObject", start=event_time + 0.001, parent=root,
                        attributes=aws_call("S3", "GetObject", {"aws.s3.bucket": name}))
    return Probe(record["finding_info"]["uid"], orjson.dumps(record), encode_batch(builder.take()))


class Watcher(threading.Thread):
    """Follows the escalations topic and notes when each finding first shows up."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(name="bench-latency-watcher", daemon=True)
        self.settings = settings
        self.first_seen: dict[str, float] = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        topic = self.settings.topic_escalations
        client = consumer(self.settings, group_id=f"{self.settings.app_id}-latency", enable_auto_commit=False,
                          fetch_wait_max_ms=5)
        partitions = client.list_topics(topic, timeout=10).topics[topic].partitions
        client.assign([TopicPartition(topic, partition, OFFSET_BEGINNING) for partition in partitions])
        try:
            while not self.stopping.is_set():
                message = client.poll(0.05)
                if message is not None and message.error() is None:
                    arrived = time.time()
                    uid = orjson.loads(message.value())["finding_uid"]
                    self.first_seen.setdefault(uid, arrived)
        finally:
            client.close()


def measure(base: Settings, scenario: Scenario, spans_per_s: float, seconds: float, runs: int) -> list[Latency]:
    """``runs`` runs of ``seconds`` each at ``spans_per_s`` offered load, against one worker."""
    batches = [(value, _span_count(value), at) for (_, value), at in
               zip(scenario.trace_batches, scenario.times["traces"], strict=True)]
    probes_per_run = int(seconds * PROBES_PER_S)
    plans = []
    for run in range(runs):
        schedule, event_times = _schedule(batches, spans_per_s, seconds, start=run * len(batches) // runs)
        plans.append((schedule, [make_probe(f"bench-probe-{run}-{index:04d}", event_times[index])
                                 for index in range(probes_per_run)]))
    with fresh_topics(base, "latency") as settings:
        probe_findings: list[Record] = [(settings.topic_findings, None, probe.finding)
                                        for _, probes in plans for probe in probes]
        publish(settings, asset_records(settings, scenario))
        watcher = Watcher(settings)
        watcher.start()
        try:
            with running_workers(settings, 1, "latency") as workers:
                publish(settings, finding_records(settings, scenario) + probe_findings)
                wanted = {records_in(settings.topic_findings): len(scenario.findings) + len(probe_findings)}
                wait_until(lambda: caught_up([metrics(worker) for worker in workers], wanted), 120,
                           "caught up with the findings", workers)
                results = []
                for schedule, probes in plans:
                    produced = _play(settings, schedule, probes)
                    deadline = time.monotonic() + SETTLE_S
                    while time.monotonic() < deadline and not produced.keys() <= watcher.first_seen.keys():
                        time.sleep(0.1)
                    results.append(_latency(produced, watcher.first_seen))
                return results
        finally:
            watcher.stopping.set()
            watcher.join(5)


def _span_count(value: bytes) -> int:
    request = ExportTraceServiceRequest.FromString(value)
    return sum(len(scope.spans) for resource in request.resource_spans for scope in resource.scope_spans)


def _schedule(batches: list[tuple[bytes, int, float]], spans_per_s: float, seconds: float,
              start: int) -> tuple[list[tuple[float, bytes]], list[float]]:
    """(send offset in seconds, batch) pairs for ``seconds`` of load, from batch ``start`` on (cycling),
    and the event time of the traffic at each probe's send offset."""
    schedule, event_times = [], []
    offset, index = 0.0, start
    while offset < seconds:
        value, spans, event_time = batches[index % len(batches)]
        schedule.append((offset, value))
        while len(event_times) < (offset + spans / spans_per_s) * PROBES_PER_S:
            event_times.append(event_time)
        offset += spans / spans_per_s
        index += 1
    return schedule, event_times


def _play(settings: Settings, schedule: list[tuple[float, bytes]], probes: list[Probe]) -> dict[str, float]:
    """Send the schedule and the probes (evenly over its length) in real time; returns each probe's send time."""
    client = producer(settings, sticky_partitioning_linger_ms=0)
    items = [(offset, value, None) for offset, value in schedule]
    items += [(index / PROBES_PER_S, probe.trace, probe.finding_uid) for index, probe in enumerate(probes)]
    items.sort(key=lambda item: item[0])
    produced: dict[str, float] = {}
    started = time.monotonic()
    for offset, value, probe_uid in items:
        wait = started + offset - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        client.produce(settings.topic_traces, value=value)
        if probe_uid is not None:
            produced[probe_uid] = time.time()
        client.poll(0)
    client.flush(30)
    return produced


def _latency(produced: dict[str, float], first_seen: dict[str, float]) -> Latency:
    delays = sorted(1000 * (first_seen[uid] - sent) for uid, sent in produced.items() if uid in first_seen)
    if not delays:
        raise RuntimeError("no probe escalated: the worker is not keeping up, or the probes are not escalated")
    return Latency(_percentile(delays, 0.50), _percentile(delays, 0.99), delays[-1], len(produced),
                   len(produced) - len(delays))


def _percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]
