"""End-to-end throughput and CPU cost of a group of hotpath workers: trace batches in, every entity event
correlated, escalations out.

The workers start on topics that hold only the asset inventory and are all ready (partitions assigned)
before anything else is written, so a second worker never finds the first one half-way through. Then:

1. the scenario's findings, until every worker has correlated them;
2. IDLE_S of nothing, over which the workers' idle CPU is read;
3. the warm-up (bench/traffic.py), which takes the workers past their start-up and estimates how many
   copies of the traffic to make before the clock starts;
4. the timed traffic (copies, then the scenario's trace batches and alerts), written as fast as the
   workers read it, with the clock and the workers' CPU (user + system of each worker process and its
   children, from psutil) running from just before the first record is written until the workers have
   read every one and correlated every entity event they caused (from their ``/metrics``). In a group's
   slices of the copies are written until the workers would not be done within ``seconds``
   (:meth:`Group.play_timed`).

Producing runs alongside, as it would in production. A group that stalls (no entity event correlated
for STALL_S) is reported with what it missed, and the benchmark goes on.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import psutil

from bench.harness import (
    HotpathProcess,
    asset_records,
    caught_up,
    final_states,
    finding_records,
    fresh_topics,
    metrics,
    publish,
    publisher,
    read_topic,
    records_in,
    running_workers,
    total,
    wait_until,
)
from bench.traffic import MAX_COPIES, Batch, Copies, copies_for, marginal_rate, records
from stream.settings import Settings

TIMEOUT_S = 600
CHECK_S = 20.0  # how long the escalations may take to settle on the expected ones, after the clock stopped
IDLE_S = 2.0
SLICE_SPANS = 40_000  # the timed traffic's copies are written in slices of about this many spans
AHEAD_S = 2.0  # how far ahead of the workers the timed traffic is written: a fast worker must never wait for it
MARGIN = 1.2  # the timed traffic is sized for this much more than the seconds asked for: its rate is estimated
PRODUCED = "hotpath_entity_events_total"
CORRELATED = "hotpath_entity_events_correlated_total"


@dataclass(frozen=True)
class WorkerRun:
    workers: int
    copy_batches: int  # trace batches of the copies played before the scenario's own traffic
    spans: int
    seconds: float
    cpu_s: float  # the workers' CPU over the timed traffic, summed
    idle_cpu_s_per_worker_s: float  # what a worker spends with nothing to do, per second
    traces_per_worker: tuple[int, ...]  # timed trace batches each worker read
    correlated_per_worker: tuple[int, ...]  # entity events each worker correlated over the timed traffic
    produced: int  # entity events the ingest agents produced, in all
    correlated: int  # entity events the correlate agents applied, in all
    escalation_differences: str  # how the escalations differ from the scenario's expected ones, or ""
    missing: str  # what the group did not get to, or ""

    @property
    def spans_per_s(self) -> float:
        return self.spans / self.seconds

    @property
    def cpu_s_per_mspan(self) -> float:
        return cpu_s_per_mspan(self.cpu_s, self.spans)

    @property
    def escalations_as_expected(self) -> bool:
        return not self.escalation_differences

    @property
    def all_correlated(self) -> bool:
        return self.correlated == self.produced and not self.missing


def cpu_s_per_mspan(cpu_s: float, spans: int) -> float:
    """CPU seconds per million spans."""
    return cpu_s * 1_000_000 / spans


def max_over_mean(counts: Sequence[float]) -> float:
    """How unevenly work split: the largest share over the mean one (1.0 is even; n workers, one busy: n)."""
    mean = statistics.fmean(counts) if counts else 0.0
    return max(counts) / mean if mean else float("nan")


def differences(got: dict[str, tuple[str, str]], wanted: dict[str, tuple[str, str]], shown: int = 5) -> str:
    """The findings whose final (state, priority) is not the wanted one, the first ``shown`` of them, or ""."""
    wrong = sorted(uid for uid in got.keys() | wanted.keys() if got.get(uid) != wanted.get(uid))
    text = "; ".join(f"{uid}: {got.get(uid) or 'none'}, expected {wanted.get(uid) or 'none'}" for uid in wrong[:shown])
    return text + (f" (and {len(wrong) - shown} more)" if len(wrong) > shown else "")


def more_traffic(elapsed_s: float, written: int, read: float, closing: int, seconds: float) -> bool:
    """Whether the timed traffic needs another slice: what is written (``written`` trace batches, ``read`` of
    them read in ``elapsed_s``), with the scenario's own ``closing`` batches still to come, would keep the
    workers busy for less than ``seconds`` at the rate they have read so far."""
    return elapsed_s + (written + closing - read) * elapsed_s / read < seconds


def cpu_seconds(processes: Sequence[psutil.Process]) -> float:
    """User + system CPU of the processes, their live children and the children they have waited for."""
    used = 0.0
    for process in processes:
        for member in [process, *process.children(recursive=True)]:
            times = member.cpu_times()
            used += times.user + times.system + times.children_user + times.children_system
    return used


def measure(base: Settings, copies: Copies, workers: int, seconds: float) -> WorkerRun:
    """One run of ``workers`` workers in one consumer group over as many trace batches of the copies, and then
    the scenario's traffic, as keep them busy for ``seconds``."""
    scenario = copies.scenario
    with fresh_topics(base, f"w{workers}") as settings:
        publish(settings, asset_records(settings, scenario))
        with running_workers(settings, workers, f"w{workers}") as processes:
            group = Group(settings, processes)
            publish(settings, finding_records(settings, scenario), group.client)
            group.wait({records_in(settings.topic_findings): len(scenario.findings)}, "done with the findings")
            idle = group.cpu()
            time.sleep(IDLE_S)
            idle_cpu = (group.cpu() - idle) / (IDLE_S * workers)
            warm_up = copies.warm_up()
            timings = [(spans, group.play(batches, f"warm-up pass {index + 1}"))
                       for index, (batches, spans) in enumerate(warm_up)]
            traces = records_in(settings.topic_traces)
            estimate = copies_for(seconds, marginal_rate(*timings[-2:]), scenario.span_count)
            copies.copy_batches(0, len(scenario.trace_batches) * (estimate - 1))  # made before the clock starts
            before = group.sample()
            cpu = group.cpu()
            copy_batches, started = group.play_timed(copies, seconds)
            played = sum(len(batches) for batches, _ in warm_up) + copy_batches + len(scenario.trace_batches)
            missing = group.wait_all({traces: played, records_in(settings.topic_alerts): len(scenario.alerts)})
            finished, cpu_s = time.monotonic(), group.cpu() - cpu
            after = group.sample()
            wanted_states = {uid: ("escalated", priority) for uid, priority in scenario.expected.escalated.items()}
            escalations = read_topic(settings, settings.topic_escalations, timeout=CHECK_S, until=lambda seen: (
                final_states([value for _, value in seen]) == wanted_states))
    return WorkerRun(
        workers=workers, copy_batches=copy_batches,
        spans=copies.copy_spans(copy_batches) + scenario.span_count,
        seconds=finished - started, cpu_s=cpu_s, idle_cpu_s_per_worker_s=idle_cpu,
        traces_per_worker=tuple(int(a.get(traces, 0) - b.get(traces, 0)) for a, b in zip(after, before, strict=True)),
        correlated_per_worker=tuple(int(total([a], CORRELATED) - total([b], CORRELATED))
                                    for a, b in zip(after, before, strict=True)),
        produced=int(total(after, PRODUCED)), correlated=int(total(after, CORRELATED)),
        escalation_differences=differences(final_states([value for _, value in escalations]), wanted_states),
        missing=missing)


class Group:
    """The worker processes of one run: their CPU and their metrics."""

    def __init__(self, settings: Settings, processes: list[HotpathProcess]) -> None:
        self.settings = settings
        self.processes = processes
        self.psutil = [psutil.Process(process.proc.pid) for process in processes]
        self.client = publisher(settings)  # one producer for every record the run writes
        self.samples: list[dict[str, float]] = []

    def cpu(self) -> float:
        return cpu_seconds(self.psutil)

    def sample(self) -> list[dict[str, float]]:
        self.samples = [metrics(process) for process in self.processes]
        return self.samples

    def wait(self, wanted: dict[str, float], what: str) -> float:
        return wait_until(lambda: caught_up(self.sample(), wanted), TIMEOUT_S, what, self.processes)

    def play(self, batches: list[Batch], what: str) -> float:
        """Write trace batches and wait until the workers have read them and correlated all they caused; returns
        the seconds it took."""
        traces = records_in(self.settings.topic_traces)
        wanted = {traces: total(self.sample(), traces) + len(batches)}
        started = time.monotonic()
        publish(self.settings, [(self.settings.topic_traces, key, value) for key, value in batches], self.client)
        return self.wait(wanted, f"done with {what}") - started

    def play_timed(self, copies: Copies, seconds: float) -> tuple[int, float]:
        """Write the timed traffic: trace batches of the copies, then the scenario's own traffic; returns how
        many batches of the copies it held and when its first record was written.

        A slice of SLICE_SPANS is written whenever the workers have less than AHEAD_S of it (or a slice) left
        to read, until what is written, with the scenario's part still to come, would keep them busy past
        ``seconds`` (and MARGIN) at the rate they have read it so far: a run lasts ``seconds`` and AHEAD_S or so
        more, whatever the machine's load does meanwhile."""
        traces = records_in(self.settings.topic_traces)
        scenario = copies.scenario
        per_slice = max(1, round(SLICE_SPANS * len(scenario.trace_batches) / scenario.span_count))
        read_before = total(self.sample(), traces)
        written = 0

        def read() -> float:
            return total(self.sample(), traces) - read_before

        started, rate = time.monotonic(), 0.0
        while written < MAX_COPIES * len(scenario.trace_batches):
            if written:
                ahead = max(per_slice, rate * AHEAD_S)
                wait_until(lambda least=written - ahead: read() > least, TIMEOUT_S, "reading the copies",
                           self.processes)
                done, elapsed = read(), time.monotonic() - started
                rate = done / elapsed
                if done >= per_slice and not more_traffic(elapsed, written, done, len(scenario.trace_batches),
                                                          seconds * MARGIN):
                    break
            publish(self.settings, [(self.settings.topic_traces, key, value)
                                    for key, value in copies.copy_batches(written, per_slice)], self.client)
            written += per_slice
        publish(self.settings, records(self.settings, copies.closing()), self.client)
        return written, started

    def wait_all(self, wanted: dict[str, float]) -> str:
        """Wait until the workers read ``wanted`` and correlated all they produced; what they did not, if they
        stalled."""
        try:
            self.wait(wanted, "done with the traffic")
        except TimeoutError as exc:
            samples = self.sample()
            unread = {name: count - total(samples, name) for name, count in wanted.items()
                      if total(samples, name) < count}
            uncorrelated = total(samples, PRODUCED) - total(samples, CORRELATED)
            return f"{exc.args[0].splitlines()[0]}; {uncorrelated:.0f} entity events not correlated" + (
                f"; records not read: {unread}" if unread else "")
        return ""
