"""End-to-end throughput of hotpath workers: trace batches in, every entity event correlated, escalations out.

The workers start on topics that hold only the asset inventory, and are all ready (partitions
assigned) before anything else is written, so a second worker never finds the first one half-way
through. Then the scenario's findings, trace batches and alerts are written as fast as the broker
takes them, and the clock runs until the workers have read every one and correlated every entity
event they caused (from their ``/metrics``). The figure is the scenario's span count over that
time; producing runs alongside, as it would in production.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench.harness import (
    asset_records,
    caught_up,
    final_states,
    finding_records,
    fresh_topics,
    metrics,
    publish,
    read_topic,
    records_in,
    running_workers,
    traffic_records,
    wait_until,
)
from stream.demo.scenario import Scenario
from stream.settings import Settings

TIMEOUT_S = 600
CHECK_S = 20.0  # how long the escalations may take to settle on the expected ones, after the clock stopped


@dataclass(frozen=True)
class Throughput:
    spans_per_s: float
    seconds: float
    records_per_worker: tuple[int, ...]  # trace batches each worker read: how evenly the group split them
    escalations_as_expected: bool  # the findings the scenario says should escalate did, at their priority


def measure(base: Settings, scenario: Scenario, workers: int = 1, **extra) -> Throughput:
    """One run of ``workers`` workers in one consumer group over the scenario's traffic."""
    with fresh_topics(base, f"w{workers}") as settings:
        publish(settings, asset_records(settings, scenario))
        with running_workers(settings, workers, "worker", **extra) as processes:
            traces = records_in(settings.topic_traces)
            wanted = {traces: len(scenario.trace_batches), records_in(settings.topic_alerts): len(scenario.alerts),
                      records_in(settings.topic_findings): len(scenario.findings)}
            started = time.monotonic()
            publish(settings, finding_records(settings, scenario) + traffic_records(settings, scenario))
            samples: list[dict[str, float]] = []

            def done() -> bool:
                samples[:] = [metrics(process) for process in processes]
                return caught_up(samples, wanted)

            finished = wait_until(done, TIMEOUT_S, "done with the traffic", processes)
            wanted_states = {uid: ("escalated", priority) for uid, priority in scenario.expected.escalated.items()}
            escalations = read_topic(settings, settings.topic_escalations, timeout=CHECK_S, until=lambda records: (
                final_states([value for _, value in records]) == wanted_states))
    seconds = finished - started
    return Throughput(scenario.span_count / seconds, seconds, tuple(int(sample.get(traces, 0)) for sample in samples),
                      final_states([value for _, value in escalations]) == wanted_states)
