"""The benchmark's arithmetic: CPU per span, how evenly the work split, and the table's verdicts."""

from __future__ import annotations

import math
import subprocess
import sys
import time

import psutil

from bench.run import QUICK, TARGETS, Bench, group_figures, table
from bench.throughput import WorkerRun, cpu_s_per_mspan, cpu_seconds, differences, max_over_mean, more_traffic
from stream.settings import load_settings

BURN = "import time\nend = time.process_time() + {seconds}\nwhile time.process_time() < end: pass"


def run(workers: int, *, cpu_s: float, spans: int = 2_000_000, traces=(50, 50), correlated=(10, 10),
        produced: int = 20, missing: str = "", differences: str = "") -> WorkerRun:
    return WorkerRun(workers=workers, copy_batches=300, spans=spans, seconds=10.0, cpu_s=cpu_s,
                     idle_cpu_s_per_worker_s=0.01, traces_per_worker=traces, correlated_per_worker=correlated,
                     produced=produced, correlated=20, escalation_differences=differences, missing=missing)


def test_cpu_per_million_spans():
    assert cpu_s_per_mspan(3.0, 1_500_000) == 2.0
    assert run(1, cpu_s=30.0).cpu_s_per_mspan == 15.0


def test_slices_are_added_until_what_is_written_keeps_the_workers_busy_long_enough():
    # 100 trace batches read a second; the scenario's own part is 100 batches
    assert more_traffic(5.0, 600, 500, 100, seconds=10.0)  # done at 7 s
    assert not more_traffic(8.0, 900, 800, 100, seconds=10.0)  # done at 10 s
    assert not more_traffic(1.0, 200, 100, 2000, seconds=10.0)  # the scenario alone takes 20 s


def test_the_split_is_the_busiest_worker_over_the_mean():
    assert max_over_mean([100, 100]) == 1.0
    assert max_over_mean([150, 50]) == 1.5
    assert max_over_mean([40, 0, 0, 0]) == 4.0  # one of four did everything
    assert math.isnan(max_over_mean([0, 0]))


def test_cpu_seconds_count_the_process_and_the_children_it_ran():
    me = [psutil.Process()]
    before = cpu_seconds(me)
    subprocess.run([sys.executable, "-c", BURN.format(seconds=0.3)], check=True)
    after_child = cpu_seconds(me)
    end = time.process_time() + 0.2
    while time.process_time() < end:
        pass
    tick = 0.011  # the kernel counts CPU time in clock ticks
    assert after_child - before >= 0.3 - tick
    assert cpu_seconds(me) - after_child >= 0.2 - tick


def test_a_run_is_all_correlated_only_when_nothing_is_missing():
    assert run(2, cpu_s=1.0).all_correlated
    assert not run(2, cpu_s=1.0, produced=22).all_correlated
    assert not run(2, cpu_s=1.0, missing="no entity event correlated for 60s").all_correlated


def test_escalation_differences_name_the_findings_and_what_they_ended_as():
    wanted = {"f1": ("escalated", "P1"), "f2": ("escalated", "P2")}
    assert differences(dict(wanted), wanted) == ""
    text = differences({"f1": ("escalated", "P2"), "f3": ("escalated", "P3")}, wanted)
    assert text == ("f1: ('escalated', 'P2'), expected ('escalated', 'P1'); f2: none, expected ('escalated', 'P2'); "
                    "f3: ('escalated', 'P3'), expected none")
    assert not run(1, cpu_s=1.0, differences=text).escalations_as_expected


def test_a_group_reports_median_rate_and_cost_the_worst_split_and_every_check():
    runs = [run(2, cpu_s=20.0, traces=(60, 40)), run(2, cpu_s=24.0, traces=(90, 10)),
            run(2, cpu_s=22.0, produced=25)]
    figures = group_figures(2, runs)
    assert figures["two_workers_spans_per_s"] == 200_000.0
    assert figures["cpu_s_per_mspan_2w"] == 11.0
    assert figures["traces_split_2w"] == 1.8
    assert figures["entity_events_split_2w"] == 1.0
    assert figures["all_correlated_2w"] is False


def test_the_table_marks_each_target_pass_or_miss_and_never_hides_a_missing_figure():
    results = {"hotpath_spans_per_s": 50_000.0, "core_spans_per_s": 100_000.0, "plumbing_ratio": 0.5,
               "cpu_s_per_mspan_1w": 20.0, "cpu_s_per_mspan_4w": 22.0, "cpu_4w_over_1w": 1.1,
               "all_correlated_2w": True, "all_correlated_4w": False, "decoder": "python"}
    rows = {line.strip().split("  ")[0]: line for line in table(results).splitlines()}
    assert rows["the same pipeline in one process, no Kafka"].endswith("MISS")
    assert ">= 0.6" in rows["the same pipeline in one process, no Kafka"]
    assert rows["CPU s per million spans, 1w/2w/4w"].endswith("PASS")
    assert "20.0 / n/a / 22.0" in rows["CPU s per million spans, 1w/2w/4w"]
    assert rows["every entity event correlated, 2w/4w"].endswith("MISS")
    assert rows["5 memory per entity-window (None windows per entity)"].endswith("not measured")
    assert "python decoder" in table(results)


def test_the_plumbing_ratio_per_cpu_second_is_the_workers_cpu_rate_over_the_pipelines():
    bench = Bench(QUICK, load_settings())
    bench.results.update(hotpath_spans_per_s=40_000.0, core_spans_per_s=200_000.0, cpu_s_per_mspan_1w=10.0)
    bench.ratios()
    assert bench.results["plumbing_ratio"] == 0.2
    assert bench.results["plumbing_ratio_cpu"] == 0.5  # 100,000 spans per CPU second


def test_every_target_of_the_issue_is_in_the_table():
    assert {"plumbing_ratio", "cpu_4w_over_1w", "decode_ratio", "hotpath_ceiling_ratio", "latency_p99_ms",
            "rss_bytes_per_entity_window"} <= TARGETS.keys()
