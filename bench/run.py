"""``make bench``: every measurement of issues 7 and 16 on the same data in one run, one table, ``bench/results.json``.

    python -m bench.run [--quick]

The scenario generator's trace batches (real opentelemetry-sdk spans, 256 to ~1000 per message,
plus the scenario's findings and alerts) are built once per (seed, scale, minutes) and cached under
``.cache/bench``. Each measurement runs on fresh topics of the local broker (``make kafka-up``), in
the order of the table; rates are medians of several runs. Worker runs play the traffic several times
over (bench/traffic.py) so that each lasts at least WORKER_TRAFFIC_S. ``--quick`` runs a reduced version
for everyday use (a smaller scenario, one run where a run needs its own workers) and writes the same keys.
Targets are reported (PASS or MISS), never enforced: a missed one does not fail the run.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import operator
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from bench import ceiling, core, latency, memory, naive, throughput
from bench.decode import measure as measure_decode
from bench.harness import (
    ROOT,
    TEST_DATA_MAX_AGE_S,
    cached_scenario,
    fresh_topics,
    median,
    publish,
    say,
    traffic_records,
)
from bench.traffic import Copies
from stream.demo.scenario import Scenario
from stream.entities.context import Context
from stream.ingest.formats.otlp import decoder_name
from stream.kafka.topics import BrokerAdmin, TopicsError
from stream.settings import Settings, load_settings

RESULTS = ROOT / "bench" / "results.json"
SEED = 7
WORKER_TRAFFIC_S = 10.0  # each worker run's timed traffic lasts at least this: more than start-up
# workers per run, and the name of their rate: the one-worker run is the hotpath_spans_per_s one
GROUPS = {1: "hotpath", 2: "two_workers", 4: "four_workers"}


@dataclass(frozen=True)
class Profile:
    name: str
    scale: int
    minutes: int
    ceiling_runs: int
    decode_repeats: int
    core_runs: int
    worker_runs: int  # runs of each group of GROUPS workers (each starts its own workers)
    naive_windows: int
    naive_window_s: float
    latency_runs: int
    latency_s: float
    memory_entities: tuple[int, ...]
    memory_windows: int
    churn: tuple[int, int, float] | None  # entities per round, rounds, seconds per round


FULL = Profile("full", scale=50, minutes=10, ceiling_runs=5, decode_repeats=5, core_runs=3, worker_runs=3,
               naive_windows=3, naive_window_s=10.0, latency_runs=3, latency_s=15.0,
               memory_entities=(10_000, 100_000), memory_windows=3, churn=(3000, 30, 2.0))
QUICK = Profile("quick", scale=5, minutes=10, ceiling_runs=3, decode_repeats=3, core_runs=3, worker_runs=1,
                naive_windows=2, naive_window_s=3.0, latency_runs=1, latency_s=8.0, memory_entities=(10_000,),
                memory_windows=3, churn=None)

# key: (how the figure must compare with the goal, the goal, the table's target column); reported, never enforced
TARGETS: dict[str, tuple[Callable[[float, float], bool], float, str]] = {
    "hotpath_ceiling_ratio": (operator.ge, 0.30, ">= 0.30 of ceiling"),
    "plumbing_ratio": (operator.ge, 0.60, ">= 0.6"),
    "hotpath_naive_ratio": (operator.ge, 10.0, ">= 10x naive"),
    "latency_p99_ms": (operator.lt, 2000.0, "p99 < 2000 ms"),
    "rss_bytes_per_entity_window": (operator.le, 512.0, "<= 512 B"),
    "scaleout_ratio": (operator.ge, 1.6, ">= 1.6x one"),
    "cpu_4w_over_1w": (operator.le, 1.15, "<= 1.15x 1w"),
    "decode_ratio": (operator.le, 3.0, "<= 3x bare parse"),
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
        self.results["decoder"] = decoder_name()
        self.step("ceiling: confluent-kafka consume + protobuf parse", lambda: self.ceiling(scenario))
        self.step("decode: OTLP decode-and-extract vs bare protobuf parse", lambda: self.decode(scenario))
        copies = Copies(scenario, self.settings)  # the worker runs' traffic, made once
        self.step("core: the worker's pipeline in one process, no Kafka", lambda: self.core(copies))
        self.step(f"hotpath end to end: groups of {', '.join(map(str, GROUPS))} workers, by turns",
                  lambda: self.workers(copies))
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
                            decode_python_spans_per_s=figures["decode_python_spans_per_s"],
                            bare_parse_spans_per_s=figures["bare_parse_spans_per_s"], decode_ratio=figures["ratio"])

    def core(self, copies: Copies) -> None:
        """The pipeline on the traffic the workers time, after the warm-up they play."""
        settings, scenario = self.settings, copies.scenario
        if "max_event_age_s" not in settings.model_fields_set:  # as the workers, which play the same old data
            settings = settings.model_copy(update={"max_event_age_s": TEST_DATA_MAX_AGE_S})
        warm_up = [("traces", value) for batches, _ in copies.warm_up() for _, value in batches]
        items = [(stream, value) for stream, (_, value) in copies.closing()]
        runs = core.spans_per_s(settings, scenario, warm_up, items, scenario.span_count, self.profile.core_runs)
        self.results.update(core_spans_per_s=median(runs), core_runs=runs)

    def workers(self, copies: Copies) -> None:
        """Groups of GROUPS workers, run by turns: a drift of the shared machine (or the broker's JIT warming
        up) weighs on every figure alike, not on whichever runs first. Every run plays the same copies,
        earliest first, as many of them as keep its workers busy for WORKER_TRAFFIC_S (two workers on two
        cores go faster than one, and the machine's load moves every rate), then the scenario's own traffic."""
        runs: dict[int, list[throughput.WorkerRun]] = {workers: [] for workers in GROUPS}
        for index in range(self.profile.worker_runs):
            for workers, done in runs.items():
                run = throughput.measure(self.settings, copies, workers, WORKER_TRAFFIC_S)
                done.append(run)
                self.escalations_as_expected.append(run.escalations_as_expected)
                say(f"  run {index + 1}, {workers} worker(s): {run.spans_per_s:,.0f} spans/s, {run.spans:,} spans in "
                    f"{run.seconds:.1f}s; {run.cpu_s_per_mspan:.1f} CPU s per million spans (idle: "
                    f"{run.idle_cpu_s_per_worker_s:.3f} CPU s per worker-second); per worker: trace batches "
                    f"{', '.join(map(str, run.traces_per_worker))}, entity events correlated "
                    f"{', '.join(map(str, run.correlated_per_worker))}")
                if not run.all_correlated or not run.escalations_as_expected:
                    say(f"  !!! {workers} worker(s) did NOT get everything right: {run.produced:,} entity events "
                        f"produced, {run.correlated:,} correlated; {run.missing or 'nothing unread'}; "
                        f"escalations: {run.escalation_differences or 'as expected'}")
        per_copy = len(copies.scenario.trace_batches)
        self.results.update(worker_traffic_copies={f"{workers}w": max(round(1 + run.copy_batches / per_copy, 1)
                                                                      for run in done)
                                                   for workers, done in runs.items()},
                            worker_runs=[asdict(run) for done in runs.values() for run in done])
        for workers, done in runs.items():
            self.results.update(group_figures(workers, done))

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
        for key, numerator, denominator in (("hotpath_ceiling_ratio", "hotpath_spans_per_s", "ceiling_spans_per_s"),
                                            ("hotpath_naive_ratio", "hotpath_spans_per_s", "naive_spans_per_s"),
                                            ("plumbing_ratio", "hotpath_spans_per_s", "core_spans_per_s"),
                                            ("scaleout_ratio", "two_workers_spans_per_s", "hotpath_spans_per_s"),
                                            ("cpu_4w_over_1w", "cpu_s_per_mspan_4w", "cpu_s_per_mspan_1w")):
            if r.get(numerator) and r.get(denominator):
                r[key] = r[numerator] / r[denominator]
        if r.get("cpu_s_per_mspan_1w") and r.get("core_spans_per_s"):
            # The same per CPU second of the worker: what the machine's other load does not move.
            r["plumbing_ratio_cpu"] = 1_000_000 / r["cpu_s_per_mspan_1w"] / r["core_spans_per_s"]


def group_figures(workers: int, runs: list[throughput.WorkerRun]) -> dict[str, Any]:
    """The keys of one group size's runs: medians of the rates and costs, the worst split, every check."""
    suffix, rates = f"_{workers}w", [run.spans_per_s for run in runs]
    figures = {
        f"{GROUPS[workers]}_spans_per_s": median(rates),
        f"{GROUPS[workers]}_runs": rates,
        f"cpu_s_per_mspan{suffix}": median(run.cpu_s_per_mspan for run in runs),
        f"idle_cpu_s_per_worker_s{suffix}": median(run.idle_cpu_s_per_worker_s for run in runs),
        f"worker_traffic_s{suffix}": min(run.seconds for run in runs),
    }
    if workers > 1:
        figures.update({
            f"traces_split{suffix}": max(throughput.max_over_mean(run.traces_per_worker) for run in runs),
            f"entity_events_split{suffix}": max(throughput.max_over_mean(run.correlated_per_worker) for run in runs),
            f"all_correlated{suffix}": all(run.all_correlated for run in runs),
        })
    return figures


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
    """The figures, their targets and whether each is met (PASS or MISS), as a plain-text table."""
    r = results

    def n(key: str, unit: str = "", digits: int = 0) -> str:
        value = r.get(key)
        return "n/a" if value is None else f"{value:,.{digits}f}{unit}"

    def each(pattern: str, digits: int, groups: tuple[int, ...] = tuple(GROUPS)) -> str:
        return " / ".join(n(pattern.format(workers), "", digits) for workers in groups)

    def target(key: str) -> tuple[str, str]:
        meets, goal, text = TARGETS[key]
        value = r.get(key)
        return text, "not measured" if value is None else "PASS" if meets(value, goal) else "MISS"

    def check(keys: list[str], holds: Callable[[Any], bool] = bool) -> str:
        values = [r.get(key) for key in keys]
        return "not measured" if None in values else "PASS" if all(map(holds, values)) else "MISS"

    windows, multi = r.get("rss_windows_per_entity"), tuple(workers for workers in GROUPS if workers > 1)
    groups = "/".join(f"{workers}w" for workers in GROUPS)
    rows = [
        ("", "measured", "compared", "target", ""),
        ("1 ceiling (confluent-kafka + protobuf parse)", n("ceiling_spans_per_s", " spans/s"), "", "", ""),
        ("2 hotpath end to end, one worker", n("hotpath_spans_per_s", " spans/s"),
         f"{n('hotpath_ceiling_ratio', '', 3)} of ceiling", *target("hotpath_ceiling_ratio")),
        ("  the same pipeline in one process, no Kafka", n("core_spans_per_s", " spans/s"),
         f"plumbing_ratio {n('plumbing_ratio', '', 2)}", *target("plumbing_ratio")),
        ("  one worker per CPU second of its own", n("cpu_s_per_mspan_1w", " CPU s per million spans", 1),
         f"{n('plumbing_ratio_cpu', '', 2)} of the pipeline's", "", ""),
        ("3 naive Faust pipeline (per-span events)", n("naive_spans_per_s", " spans/s"),
         f"hotpath {n('hotpath_naive_ratio', 'x', 1)}", *target("hotpath_naive_ratio")),
        (f"4 latency p50 / p99 / max at {n('latency_offered_spans_per_s', ' spans/s')}",
         f"{n('latency_p50_ms')} / {n('latency_p99_ms')} / {n('latency_max_ms')} ms", "", *target("latency_p99_ms")),
        (f"5 memory per entity-window ({windows} windows per entity)", n("rss_bytes_per_entity_window", " B"), "",
         *target("rss_bytes_per_entity_window")),
        ("  memory under churn (last third / middle third)", n("rss_flat_ratio", "", 2), "", "flat (~1.0)", ""),
        ("6 scale-out, two workers", n("two_workers_spans_per_s", " spans/s"), f"{n('scaleout_ratio', 'x', 2)} of one",
         *target("scaleout_ratio")),
        ("  four workers", n("four_workers_spans_per_s", " spans/s"), "", "", ""),
        (f"  CPU s per million spans, {groups}", each("cpu_s_per_mspan_{}w", 1),
         f"4w {n('cpu_4w_over_1w', 'x', 2)} 1w", *target("cpu_4w_over_1w")),
        (f"  idle CPU s per worker-second, {groups}", each("idle_cpu_s_per_worker_s_{}w", 3), "", "", ""),
        ("  split max/mean, trace batches / entity events, " + "/".join(f"{w}w" for w in multi),
         " ; ".join(f"{n(f'traces_split_{w}w', '', 2)} / {n(f'entity_events_split_{w}w', '', 2)}" for w in multi),
         "", "1.0 is even", ""),
        ("  every entity event correlated, " + "/".join(f"{w}w" for w in multi),
         " / ".join(str(r.get(f"all_correlated_{w}w", "n/a")).lower() for w in multi), "", "all true",
         check([f"all_correlated_{w}w" for w in multi])),
        (f"  seconds of timed traffic per run, {groups}", each("worker_traffic_s_{}w", 1),
         " / ".join(map(str, r.get("worker_traffic_copies", {}).values())) + " copies of the traffic",
         f">= {WORKER_TRAFFIC_S:.0f} s",
         check([f"worker_traffic_s_{w}w" for w in GROUPS], lambda seconds: seconds >= WORKER_TRAFFIC_S)),
        (f"7 OTLP decode-and-extract ({r.get('decoder', 'n/a')} decoder)", n("decode_spans_per_s", " spans/s"),
         f"{n('decode_ratio', 'x', 1)} bare parse's time", *target("decode_ratio")),
        ("  the same, pure-Python walk", n("decode_python_spans_per_s", " spans/s"), "", "", ""),
        ("  bare protobuf parse", n("bare_parse_spans_per_s", " spans/s"), "", "", ""),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a reduced run for everyday use (under three minutes)")
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
    say(f"written to {RESULTS.relative_to(ROOT)} in {results['duration_s']:.0f}s"
        + (f"; FAILED: {', '.join(bench.failed)}" if bench.failed else ""))
    return 1 if bench.failed else 0


if __name__ == "__main__":
    sys.exit(main())
