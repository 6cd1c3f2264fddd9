"""``make bench``: every measurement of issue 7 on the same data in one run, one table, ``bench/results.json``.

    python -m bench.run [--quick]

The scenario generator's trace batches (real opentelemetry-sdk spans, 256 to ~1000 per message,
plus the scenario's findings and alerts) are built once per (seed, scale, minutes) and cached under
``.cache/bench``. Each measurement runs on fresh topics of the local broker (``make kafka-up``), in
the order of the table; rates are medians of several runs. ``--quick`` runs a reduced version for
everyday use (a smaller scenario, one run where a run needs its own worker) and writes the same keys.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from bench import ceiling, latency, memory, naive, throughput
from bench.decode import measure as measure_decode
from bench.harness import ROOT, cached_scenario, fresh_topics, median, publish, say, traffic_records
from stream.demo.scenario import Scenario
from stream.entities.context import Context
from stream.kafka.topics import BrokerAdmin, TopicsError
from stream.settings import Settings, load_settings

RESULTS = ROOT / "bench" / "results.json"
SEED = 7


@dataclass(frozen=True)
class Profile:
    name: str
    scale: int
    minutes: int
    ceiling_runs: int
    decode_repeats: int
    worker_runs: int  # hotpath and two-worker runs (each starts its own workers)
    naive_windows: int
    naive_window_s: float
    latency_runs: int
    latency_s: float
    memory_entities: tuple[int, ...]
    memory_windows: int
    churn: tuple[int, int, float] | None  # entities per round, rounds, seconds per round


FULL = Profile("full", scale=50, minutes=10, ceiling_runs=5, decode_repeats=5, worker_runs=3, naive_windows=3,
               naive_window_s=10.0, latency_runs=3, latency_s=15.0, memory_entities=(10_000, 100_000),
               memory_windows=3, churn=(3000, 30, 2.0))
QUICK = Profile("quick", scale=5, minutes=10, ceiling_runs=3, decode_repeats=3, worker_runs=1, naive_windows=3,
                naive_window_s=3.0, latency_runs=1, latency_s=8.0, memory_entities=(10_000,), memory_windows=3,
                churn=None)

TARGETS = {
    "hotpath_ceiling_ratio": (0.30, "at least 30% of the ceiling"),
    "hotpath_naive_ratio": (10.0, "at least 10x the naive baseline"),
    "latency_p99_ms": (2000.0, "p99 under 2 s at half of maximum load"),
    "rss_bytes_per_entity_window": (1024.0, "under 1 KB per entity-window"),
    "scaleout_ratio": (1.6, "two workers at least 1.6x one"),
}


class Bench:
    """Runs the measurements in order, keeping going past a failed one (its figures stay null)."""

    def __init__(self, profile: Profile, settings: Settings) -> None:
        self.profile = profile
        self.settings = settings
        self.results: dict[str, Any] = {}
        self.failed: list[str] = []
        self.escalations_as_expected: list[bool] = []

    def step(self, name: str, measure: Callable[[], None]) -> None:
        say(f"{name} ...")
        started = time.monotonic()
        try:
            measure()
        except Exception:  # one broken measurement must not cost the others
            self.failed.append(name)
            say(f"{name} FAILED:\n{traceback.format_exc()}")
        else:
            say(f"{name} done in {time.monotonic() - started:.0f}s")

    def run(self, scenario: Scenario) -> dict[str, Any]:
        self.step("ceiling: confluent-kafka consume + protobuf parse", lambda: self.ceiling(scenario))
        self.step("decode: OTLP decode-and-extract vs bare protobuf parse", lambda: self.decode(scenario))
        self.step("hotpath end to end: one worker, and two in one group (scale-out), by turns",
                  lambda: self.workers(scenario))
        self.step("naive Faust baseline", lambda: self.naive(scenario))
        self.step("latency at half of hotpath's maximum", lambda: self.latency(scenario))
        self.step("memory with active entities", self.memory)
        if self.profile.churn:
            self.step("memory while entities churn and windows expire", self.flatness)
        self.ratios()
        self.results["escalations_as_expected"] = all(self.escalations_as_expected or [False])
        return self.results

    def ceiling(self, scenario: Scenario) -> None:
        with fresh_topics(self.settings, "ceiling") as settings:
            publish(settings, traffic_records(settings, scenario))
            runs = [ceiling.measure(settings, len(scenario.trace_batches), scenario.span_count)
                    for _ in range(self.profile.ceiling_runs)]
        self.results.update(ceiling_spans_per_s=median(runs), ceiling_runs=runs)

    def decode(self, scenario: Scenario) -> None:
        context = Context()
        for asset in scenario.assets:
            context.add_asset(asset)
        figures = measure_decode([value for _, value in scenario.trace_batches], self.profile.decode_repeats,
                                 context.resolver)
        self.results.update(decode_spans_per_s=figures["decode_spans_per_s"],
                            bare_parse_spans_per_s=figures["bare_parse_spans_per_s"], decode_ratio=figures["ratio"])

    def workers(self, scenario: Scenario) -> None:
        """One worker and two, run by turns: a drift of the shared machine (or the broker's JIT warming
        up) weighs on both figures alike, not on whichever runs first."""
        runs: dict[int, list[float]] = {1: [], 2: []}
        for index in range(self.profile.worker_runs):
            for workers, figures in runs.items():
                result = throughput.measure(self.settings, scenario, workers)
                per_worker = ", ".join(map(str, result.records_per_worker))
                expected = "as expected" if result.escalations_as_expected else "NOT as the scenario expects"
                say(f"  run {index + 1}, {workers} worker(s): {result.spans_per_s:,.0f} spans/s in "
                    f"{result.seconds:.1f}s (trace batches per worker: {per_worker}; escalations {expected})")
                figures.append(result.spans_per_s)
                self.escalations_as_expected.append(result.escalations_as_expected)
        self.results.update(hotpath_spans_per_s=median(runs[1]), hotpath_runs=runs[1],
                            two_workers_spans_per_s=median(runs[2]), two_workers_runs=runs[2])

    def naive(self, scenario: Scenario) -> None:
        runs = naive.measure(self.settings, scenario, self.profile.naive_window_s, self.profile.naive_windows)
        self.results.update(naive_spans_per_s=median(runs), naive_runs=runs)

    def latency(self, scenario: Scenario) -> None:
        load = self.results.get("hotpath_spans_per_s")
        if not load:
            raise RuntimeError("needs hotpath's maximum, which was not measured")
        runs = latency.measure(self.settings, scenario, load / 2, self.profile.latency_s, self.profile.latency_runs)
        for index, run in enumerate(runs):
            say(f"  run {index + 1}: p50 {run.p50_ms:,.0f} ms, p99 {run.p99_ms:,.0f} ms, max {run.max_ms:,.0f} ms "
                f"({run.probes} probes, {run.lost} lost)")
        self.results.update(latency_offered_spans_per_s=load / 2, latency_p50_ms=median(r.p50_ms for r in runs),
                            latency_p99_ms=median(r.p99_ms for r in runs), latency_max_ms=max(r.max_ms for r in runs),
                            latency_lost_probes=sum(r.lost for r in runs), latency_runs=[asdict(r) for r in runs])

    def memory(self) -> None:
        footprints = memory.footprints(self.settings, list(self.profile.memory_entities), self.profile.memory_windows)
        largest = footprints[-1]
        self.results.update(
            rss_bytes_per_entity_window=largest.bytes_per_entity_window,
            rss_windows_per_entity=largest.windows,
            rss_delta_bytes={str(f.entities): f.rss_delta_bytes for f in footprints},
        )

    def flatness(self) -> None:
        per_round, rounds, round_s = self.profile.churn
        flat = memory.flatness(self.settings, per_round, rounds, round_s)
        self.results.update(rss_flat_ratio=flat.ratio, rss_churn_entities=flat.entities_seen,
                            rss_churn_bytes_by_round=flat.rss_by_round)

    def ratios(self) -> None:
        r = self.results
        if r.get("hotpath_spans_per_s") and r.get("ceiling_spans_per_s"):
            r["hotpath_ceiling_ratio"] = r["hotpath_spans_per_s"] / r["ceiling_spans_per_s"]
        if r.get("hotpath_spans_per_s") and r.get("naive_spans_per_s"):
            r["hotpath_naive_ratio"] = r["hotpath_spans_per_s"] / r["naive_spans_per_s"]
        if r.get("hotpath_spans_per_s") and r.get("two_workers_spans_per_s"):
            r["scaleout_ratio"] = r["two_workers_spans_per_s"] / r["hotpath_spans_per_s"]


def environment(profile: Profile, scenario: Scenario) -> dict[str, Any]:
    """What the figures were measured on, so runs on different commits or machines can be compared."""
    import confluent_kafka
    from google.protobuf.internal import api_implementation

    return {
        "profile": profile.name,
        "scenario": {"seed": SEED, "scale": profile.scale, "minutes": profile.minutes, "spans": scenario.span_count,
                     "trace_batches": len(scenario.trace_batches), "findings": len(scenario.findings),
                     "alerts": len(scenario.alerts)},
        "cpu_count": os.cpu_count(),
        "load_average_1_5_15": os.getloadavg(),  # other work on the machine skews every figure, scale-out most
        "machine": platform.platform(),
        "python": platform.python_version(),
        "kafka": _launcher_kafka_version(),
        "faust": _version("faust-streaming"),
        "aiokafka": _version("aiokafka"),
        "confluent_kafka": _version("confluent-kafka"),
        "librdkafka": confluent_kafka.libversion()[0],
        "protobuf": f"{_version('protobuf')} ({api_implementation.Type()})",
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
    }


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _launcher_kafka_version() -> str:
    spec = importlib.util.spec_from_file_location("launcher", ROOT / "deploy" / "kafka" / "launcher.py")
    launcher = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launcher)
    return launcher.kafka_version()


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def table(results: dict[str, Any]) -> str:
    """The figures, their targets and whether each is met, as a plain-text table."""
    r = results

    def n(key: str, unit: str = "", digits: int = 0) -> str:
        value = r.get(key)
        return "n/a" if value is None else f"{value:,.{digits}f}{unit}"

    def verdict(key: str, higher_is_better: bool = True) -> str:
        value, (goal, _) = r.get(key), TARGETS[key]
        if value is None:
            return "not measured"
        return "met" if (value >= goal if higher_is_better else value < goal) else "MISSED"

    windows = r.get("rss_windows_per_entity")
    rows = [
        ("1 ceiling (confluent-kafka + protobuf parse)", n("ceiling_spans_per_s", " spans/s"), "", ""),
        ("2 hotpath end to end, one worker", n("hotpath_spans_per_s", " spans/s"),
         f"{n('hotpath_ceiling_ratio', '', 3)} of ceiling (>= 0.30)", verdict("hotpath_ceiling_ratio")),
        ("3 naive Faust pipeline (per-span events)", n("naive_spans_per_s", " spans/s"),
         f"hotpath {n('hotpath_naive_ratio', 'x', 1)} (>= 10x)", verdict("hotpath_naive_ratio")),
        (f"4 latency p50 / p99 / max at {n('latency_offered_spans_per_s', ' spans/s')}",
         f"{n('latency_p50_ms')} / {n('latency_p99_ms')} / {n('latency_max_ms')} ms", "p99 < 2000 ms",
         verdict("latency_p99_ms", higher_is_better=False)),
        (f"5 memory per entity-window ({windows} windows per entity)", n("rss_bytes_per_entity_window", " B"),
         "< 1024 B", verdict("rss_bytes_per_entity_window", higher_is_better=False)),
        ("  memory under churn (last third / middle third)", n("rss_flat_ratio", "", 2), "flat (~1.0)", ""),
        ("6 scale-out, two workers", n("two_workers_spans_per_s", " spans/s"),
         f"{n('scaleout_ratio', 'x', 2)} of one (>= 1.6x)", verdict("scaleout_ratio")),
        ("7 OTLP decode-and-extract", n("decode_spans_per_s", " spans/s"),
         f"bare parse {n('bare_parse_spans_per_s', ' spans/s')} ({n('decode_ratio', 'x', 1)} the time)", ""),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a reduced run for everyday use (under two minutes)")
    args = parser.parse_args(argv)
    profile = QUICK if args.quick else FULL
    settings = load_settings()
    try:
        BrokerAdmin(settings).metadata()
    except TopicsError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    started = time.monotonic()
    say(f"hotpath benchmark ({profile.name}) on {settings.bootstrap_servers}, {os.cpu_count()} cores")
    scenario = cached_scenario(SEED, profile.scale, profile.minutes)
    say(f"scenario: {scenario.span_count:,} spans in {len(scenario.trace_batches)} OTLP batches "
        f"(~{scenario.span_count // max(1, len(scenario.trace_batches))} spans each), "
        f"{len(scenario.findings)} findings, {len(scenario.alerts)} alerts")
    bench = Bench(profile, settings)
    results = bench.run(scenario)
    results.update(environment=environment(profile, scenario), failed=bench.failed,
                   duration_s=round(time.monotonic() - started, 1))
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(table(results))
    print()
    say(f"written to {RESULTS.relative_to(ROOT)}" + (f"; FAILED: {', '.join(bench.failed)}" if bench.failed else ""))
    return 1 if bench.failed else 0


if __name__ == "__main__":
    sys.exit(main())
