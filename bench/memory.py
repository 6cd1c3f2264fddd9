"""Memory: the worker's resident set with 10k and 100k active entities, and whether it stays flat as windows expire.

Entities are DynamoDB tables read in ``BatchGetItem`` calls (real SDK spans whose
``aws.dynamodb.table_names`` lists a hundred tables each), so a few thousand spans make a hundred
thousand entities. Each entity is touched in ``windows`` consecutive window steps, so its state
holds that many step buckets of its hopping windows: bytes per entity-window is the growth of the
worker's RSS over its idle baseline divided by entities x windows.

The flatness run churns entities: every round brings new ones a window step later in event time,
with windows short enough (and sweeps frequent enough) that the old ones go stale and are forgotten
while it runs; the peak RSS of its last third is compared with the peak of its middle third.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psutil

from bench.harness import (
    HotpathProcess,
    Record,
    caught_up,
    fresh_topics,
    metrics,
    publish,
    records_in,
    running_workers,
    say,
    total,
    wait_until,
)
from stream.demo.scenario import DEFAULT_START
from stream.demo.tracegen import TraceBuilder, Workload, aws_call, encode_batch
from stream.settings import Settings

TABLES_PER_SPAN = 100
SPANS_PER_MESSAGE = 10
STEP_S = 60.0
IDLE_S = 3.0  # let the worker settle before its baseline is read
# The flatness run: short windows, stale after one, swept every 60 ticks of 0.25 s.
CHURN_SETTINGS = {"window_size_s": 300.0, "window_step_s": STEP_S, "allowed_lateness_s": 0.0, "stale_windows": 1,
                  "tick_interval_s": 0.25}


@dataclass(frozen=True)
class Footprint:
    entities: int
    windows: int
    rss_delta_bytes: int

    @property
    def bytes_per_entity_window(self) -> float:
        return self.rss_delta_bytes / (self.entities * self.windows)


@dataclass(frozen=True)
class Flatness:
    rss_by_round: list[int]
    entities_seen: int

    @property
    def ratio(self) -> float:
        """Peak RSS in the last third of the run over the peak in the middle third: 1.0 is flat.

        The first third is the ramp (nothing has expired yet); by the middle third entities expire
        and are swept as fast as new ones come, so a worker that holds on to them keeps growing.
        """
        third = len(self.rss_by_round) // 3
        return max(self.rss_by_round[2 * third:]) / max(self.rss_by_round[third:2 * third])


def entity_messages(first: int, count: int, event_time: float) -> list[bytes]:
    """OTLP messages whose spans read tables ``first`` .. ``first + count - 1``, ending at ``event_time``."""
    builder = TraceBuilder(workloads=[Workload("ledger-batch", pod="ledger-batch-7d9f8c6b5-x2k4q")])
    messages = []
    names = [f"bench-entity-{index:07d}" for index in range(first, first + count)]
    for start in range(0, count, TABLES_PER_SPAN):
        builder.client_span("ledger-batch", "DynamoDB.BatchGetItem", start=event_time - 0.01, attributes=aws_call(
            "DynamoDB", "BatchGetItem", {"aws.dynamodb.table_names": tuple(names[start:start + TABLES_PER_SPAN])}))
        if len(builder.spans) == SPANS_PER_MESSAGE:
            messages.append(encode_batch(builder.take()))
    if builder.spans:
        messages.append(encode_batch(builder.take()))
    return messages


def footprints(base: Settings, counts: list[int], windows: int) -> list[Footprint]:
    """RSS growth with each of ``counts`` active entities (ascending), one worker, ``windows`` steps each."""
    # The tables have no finding or asset: a worker keeps the traffic of only the latest
    # HOTPATH_MAX_UNCLAIMED_ENTITIES of those, so the bound is raised to measure every entity's state.
    with fresh_topics(base, "memory") as settings, \
            running_workers(settings, 1, "memory", max_unclaimed_entities=max(counts)) as workers:
        process = psutil.Process(workers[0].proc.pid)
        time.sleep(IDLE_S)
        baseline = process.memory_info().rss
        out, loaded = [], 0
        for count in counts:
            for step in range(windows):
                _play(settings, workers, entity_messages(loaded, count - loaded, DEFAULT_START + step * STEP_S))
            loaded = count
            out.append(Footprint(count, windows, process.memory_info().rss - baseline))
            say(f"  memory: {count:,} entities x {windows} windows: RSS +{out[-1].rss_delta_bytes / 2**20:,.0f} MiB")
        return out


def flatness(base: Settings, per_round: int, rounds: int, round_s: float) -> Flatness:
    """RSS while ``rounds`` rounds of ``per_round`` new entities arrive, one window step apart, every ``round_s``."""
    # As above: the sweep, not the bound on unclaimed entities, is what must keep memory flat here.
    with fresh_topics(base, "churn") as settings, \
            running_workers(settings, 1, "churn", max_unclaimed_entities=per_round * rounds,
                            **CHURN_SETTINGS) as workers:
        process = psutil.Process(workers[0].proc.pid)
        rss = []
        for round_index in range(rounds):
            started = time.monotonic()
            _play(settings, workers, entity_messages(round_index * per_round, per_round,
                                                     DEFAULT_START + round_index * STEP_S))
            time.sleep(max(0.0, round_s - (time.monotonic() - started)))
            rss.append(process.memory_info().rss)
        return Flatness(rss, rounds * per_round)


def _play(settings: Settings, workers: list[HotpathProcess], messages: list[bytes]) -> None:
    """Send the messages and wait until the worker has correlated every entity event they caused."""
    traces = records_in(settings.topic_traces)
    wanted = {traces: total([metrics(worker) for worker in workers], traces) + len(messages)}
    records: list[Record] = [(settings.topic_traces, None, message) for message in messages]
    publish(settings, records)
    wait_until(lambda: caught_up([metrics(worker) for worker in workers], wanted), 600,
               "done with the entity traffic", workers)
