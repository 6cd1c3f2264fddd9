"""``merged_records``: replay's input files merged in event-time order, in bounded memory, with progress."""

from __future__ import annotations

import io
import itertools
import os
import pty
import random
import select
import tracemalloc
import tty
from collections.abc import Iterable
from pathlib import Path

import orjson
import pytest
from inputs import POD, falco_event
from otlp_messages import payments_traffic, traces_builder

from stream.demo.scenario import build_scenario
from stream.entities.resolve import EntityResolver
from stream.ingest.files import iter_file_records
from stream.ingest.formats.assets import load_asset_file
from stream.ingest.merge import SAMPLE_SIZE, Progress, TimeSample, merged_records
from stream.models import epoch_to_rfc3339
from stream.settings import load_settings

T0 = 1_772_446_800.0  # 2026-03-02T10:20:00Z
SETTINGS = load_settings()


def alert_line(ts: float, uid: str) -> bytes:
    return orjson.dumps(falco_event(time=epoch_to_rfc3339(ts), uuid=uid)) + b"\n"


def write(path: Path, lines: Iterable[bytes]) -> Path:
    with path.open("wb") as out:
        out.writelines(lines)
    return path


def shuffled_within(times: list[float], span: int, seed: int) -> list[float]:
    """``times`` out of order, but never by more than ``span`` places."""
    rng = random.Random(seed)
    blocks = [times[i:i + span] for i in range(0, len(times), span)]
    return [ts for block in blocks for ts in rng.sample(block, len(block))]


def merged(inputs: dict[str, list[Path]], errors: io.StringIO | None = None, **settings) -> list[tuple[str, str]]:
    records = merged_records(inputs, EntityResolver(), load_settings(**settings) if settings else SETTINGS, errors)
    return [(stream, record.uid) for stream, record in records]


def test_files_out_of_order_within_the_lateness_merge_as_one_stable_sort_would(tmp_path):
    # Three alert files, each shuffled by up to 30 s, sharing some times (ties go to the file read first).
    files = []
    for index in range(3):
        times = shuffled_within([T0 + second for second in range(0, 600, 1 + index)], 30, seed=index)
        files.append(write(tmp_path / f"alerts-{index}.ndjson",
                           (alert_line(ts, f"f{index}-{ts - T0:g}") for ts in times)))

    everything = [(record.event_time, record.uid) for path in files
                  for record in iter_file_records(path, EntityResolver(), SETTINGS)]
    expected = [("alerts", uid) for _, uid in sorted(everything, key=lambda pair: pair[0])]
    assert merged({"alerts": files}) == expected
    assert expected[:3] == [("alerts", "f0-0"), ("alerts", "f1-0"), ("alerts", "f2-0")]


@pytest.mark.parametrize("encoding", ["otlp_proto", "otlp_json"])  # a file per trace batch, or one of them all
def test_the_demo_scenario_merges_as_replay_sorted_it_all_in_memory(tmp_path, encoding):
    files = build_scenario(seed=11, minutes=20, encoding=encoding).write_files(tmp_path)
    resolver = EntityResolver()
    for path in files["assets"]:
        for asset in load_asset_file(path):
            resolver.add_asset(asset)
    everything = [(stream, record) for stream in ("traces", "findings", "alerts") for path in files[stream]
                  for record in iter_file_records(path, resolver, SETTINGS)]  # what replay held before
    expected = sorted(everything, key=lambda pair: pair[1].event_time)

    merged = list(merged_records(files, resolver, SETTINGS))

    assert len(merged) > 200
    assert [(stream, record.to_record()) for stream, record in merged] == [
        (stream, record.to_record()) for stream, record in expected]


def test_one_file_and_the_same_records_split_over_many_files_merge_alike(tmp_path):
    times = shuffled_within([T0 + second for second in range(2000)], 50, seed=1)
    lines = [alert_line(ts, f"a-{number}") for number, ts in enumerate(times)]
    whole = write(tmp_path / "all.ndjson", lines)
    parts = []
    for part in range(7):  # in time, so the files overlap; each keeps its records' relative order
        parts.append(write(tmp_path / f"part-{part}.ndjson",
                           (line for number, line in enumerate(lines) if number % 7 == part)))

    one = merged({"alerts": [whole]})
    assert [uid for _, uid in one] != [f"a-{number}" for number in range(len(lines))]  # the input was not sorted
    assert merged({"alerts": parts}) == merged({"alerts": list(reversed(parts))}) == one


def test_a_record_later_than_the_allowed_lateness_comes_out_late_and_is_not_lost(tmp_path):
    times = [T0, T0 + 100, T0 + 400, T0 + 50, T0 + 500]  # T0 + 50 comes 350 s after T0 + 400
    alerts = write(tmp_path / "alerts.ndjson", (alert_line(ts, f"at-{ts - T0:g}") for ts in times))

    # Held for 300 s of event time, at-0 and at-100 left when at-400 was read: at-50 leaves at once,
    # after at-100, and the correlator judges it late, as the worker would.
    assert [uid for _, uid in merged({"alerts": [alerts]}, allowed_lateness_s=300)] == [
        "at-0", "at-100", "at-50", "at-400", "at-500"]
    assert [uid for _, uid in merged({"alerts": [alerts]}, allowed_lateness_s=400)] == [
        "at-0", "at-50", "at-100", "at-400", "at-500"]


def test_alerts_resolve_the_pods_of_traces_read_later_in_event_time(tmp_path):
    builder = traces_builder()
    payments_traffic(builder, T0 + 600)  # the traces that name the pod come ten minutes after the alert
    traces = tmp_path / "traces.jsonl"
    traces.write_bytes(orjson.dumps(orjson.loads(builder.to_otlp_json())) + b"\n")
    alerts = write(tmp_path / "alerts.ndjson", [alert_line(T0, "shell")])

    records = list(merged_records({"alerts": [alerts], "traces": [traces]}, EntityResolver(), SETTINGS))

    assert [stream for stream, _ in records] == ["alerts", "traces", "traces"]
    assert records[0][1].entities == ["service:payments-api"]
    assert records[0][1].subject == POD


def test_undecodable_implausible_and_misplaced_records_are_skipped_once_with_the_reason(tmp_path):
    alerts = write(tmp_path / "alerts.ndjson", [alert_line(T0, "honest"), b'{"rule": "cut\n',
                                                alert_line(T0 + 60, "honest-2"),
                                                alert_line(4_102_444_800.0, "forged-2100")])
    misplaced = write(tmp_path / "findings.ndjson", [alert_line(T0 + 30, "an-alert")])
    errors = io.StringIO()

    assert merged({"alerts": [alerts], "findings": [misplaced]}, errors) == [
        ("alerts", "honest"), ("alerts", "honest-2")]
    skipped = errors.getvalue().splitlines()
    assert len(skipped) == 3
    assert skipped[0] == f"hotpath replay: skipped alert record in {misplaced}, given as findings"
    assert skipped[1].startswith(f"hotpath replay: skipped {alerts}:2: not valid JSON")
    assert "alert forged-2100: event time 2100-01-01T00:00:00.000Z is implausible: more than 604800 s from the " \
           "data's median time (HOTPATH_MAX_EVENT_AGE_S)" in skipped[2]


def test_the_median_of_the_sample_is_exact_when_small_and_unmoved_by_a_few_forged_times():
    small = TimeSample()
    for ts in (5.0, 1.0, 3.0):
        small.add(ts)
    assert small.median() == 3.0
    assert TimeSample().median() is None

    large = TimeSample()
    honest = [T0 + second for second in range(5 * SAMPLE_SIZE)]
    for ts in itertools.chain(honest, [4_102_444_800.0] * 20):
        large.add(ts)
    assert len(large.times) == SAMPLE_SIZE
    assert abs(large.median() - honest[len(honest) // 2]) < 0.05 * len(honest)  # near the true median


def test_only_the_files_whose_times_the_merge_has_reached_are_open(tmp_path):
    files = [write(tmp_path / f"minute-{minute:03d}.ndjson",
                   (alert_line(T0 + 60 * minute + second, f"m{minute}-{second}") for second in range(0, 60, 10)))
             for minute in range(120)]
    files.reverse()  # read order does not matter to the merge
    descriptors = Path("/proc/self/fd")
    before = len(list(descriptors.iterdir()))
    most = 0
    order = []
    for _, record in merged_records({"alerts": files}, EntityResolver(), SETTINGS):
        most = max(most, len(list(descriptors.iterdir())) - before)
        order.append(record.uid)
    assert order[:7] == [f"m0-{second}" for second in range(0, 60, 10)] + ["m1-0"]
    assert len(order) == 120 * 6
    assert most <= 2  # a plain merge of lazy readers would hold all 120 open


def peak_memory_of_merging(folder: Path, records: int, files: int) -> int:
    """tracemalloc's peak while merging ``records`` alerts spread over ``files`` files (all records are read)."""
    paths = []
    for index in range(files):
        times = shuffled_within([T0 + second for second in range(index, records, files)], 40, seed=index)
        paths.append(write(folder / f"alerts-{records}-{index}.ndjson",
                           (alert_line(ts, f"{index}-{ts - T0:g}") for ts in times)))
    tracemalloc.start()
    try:
        count = sum(1 for _ in merged_records({"alerts": paths}, EntityResolver(), SETTINGS))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == records
    return peak


def test_memory_stays_bounded_however_large_the_input(tmp_path):
    small = peak_memory_of_merging(tmp_path, 12_000, 4)  # more records than the sample of times holds
    large = peak_memory_of_merging(tmp_path, 48_000, 4)
    assert large < 1.3 * small  # holding the records would make it about 4x


class Ticking:
    """A clock that moves on ``step`` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def alerts_file(tmp_path: Path, count: int) -> Path:
    return write(tmp_path / "alerts.ndjson", (alert_line(T0 + second, f"p-{second}") for second in range(count)))


def test_progress_is_silent_for_an_input_read_quickly(tmp_path):
    out = io.StringIO()
    progress = Progress(out, "hotpath replay", clock=Ticking(0.001))
    records = list(merged_records({"alerts": [alerts_file(tmp_path, 200)]}, EntityResolver(), SETTINGS,
                                  progress=progress))
    assert len(records) == 200
    assert out.getvalue() == ""


def test_progress_on_a_log_says_records_share_of_bytes_and_rate_a_line_every_few_seconds(tmp_path):
    out = io.StringIO()
    alerts = alerts_file(tmp_path, 200)
    progress = Progress(out, "hotpath replay", clock=Ticking(0.25), log_every_s=5.0)
    list(merged_records({"alerts": [alerts]}, EntityResolver(), SETTINGS, progress=progress))

    lines = out.getvalue().splitlines()
    # 400 records read over two passes, 0.25 s each: 100 s, one line every 5 s after the first 2 s.
    assert 18 <= len(lines) <= 22
    size = f"{alerts.stat().st_size / 1000:.1f} kB"
    assert lines[0].startswith("hotpath replay: scanning (pass 1 of 2): 8 records, ")
    assert lines[0].endswith(f"% of {size}, 4 records/s")
    assert lines[-1] == f"hotpath replay: merging (pass 2 of 2): 200 records, 100% of {size}, 4 records/s"


def read_all(descriptor: int) -> str:
    chunks = []
    while select.select([descriptor], [], [], 0)[0]:
        chunks.append(os.read(descriptor, 1 << 16))
    return b"".join(chunks).decode()


def test_progress_on_a_terminal_rewrites_one_line_and_ends_it(tmp_path):
    controller, terminal = pty.openpty()
    tty.setraw(terminal)  # no newline translation: what is read is what was written
    try:
        with os.fdopen(terminal, "w", closefd=False) as out:
            progress = Progress(out, "hotpath replay", clock=Ticking(0.25))
            list(merged_records({"alerts": [alerts_file(tmp_path, 40)]}, EntityResolver(), SETTINGS,
                                progress=progress))
        shown = read_all(controller)
    finally:
        os.close(controller)
        os.close(terminal)
    updates = shown.split("\r")[1:]
    assert len(updates) > 3  # one line, rewritten about every second
    assert shown.count("\n") == 1 and shown.endswith("\n")
    assert updates[-1].rstrip().startswith("hotpath replay: merging (pass 2 of 2): 40 records, 100% of")


def test_no_input_yields_nothing():
    assert merged({"traces": [], "findings": []}) == []
