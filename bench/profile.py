"""``make profile``: where one worker's wall time and CPU time go, per stage, under the benchmark's traffic.

    python -m bench.profile [--quick] [--times N]

One worker runs over the benchmark's scenario (its trace batches played ``--times`` over, as earlier
copies with fresh traces: bench/traffic.py, so that the traffic outlasts start-up) while two py-spy
samplers watch it: one with ``--idle`` (wall time: every sample, waiting included) and one without (CPU
time: only samples of a running thread). Each sample is put in the stage of the innermost frame that
belongs to one (:data:`STAGES`), and the table gives each stage's share. The wall column is the event
loop's thread (Faust's worker runs it on the main thread), where every stage of the pipeline runs; a
sample waiting for the GIL stays in the frame that waits. The CPU column is every thread: Faust's consumer
thread (aiokafka fetches on a thread of its own) and the feeds' threads too. The raw profiles stay under
``.run/profile/`` for a closer look (py-spy's raw format: one stack per line, root first).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bench.harness import (
    ROOT,
    asset_records,
    cached_scenario,
    caught_up,
    finding_records,
    fresh_topics,
    metrics,
    publish,
    records_in,
    running_workers,
    say,
    wait_until,
)
from bench.traffic import Copies, records
from stream.settings import load_settings

PROFILE_DIR = ROOT / ".run" / "profile"
SEED = 7
RATE_HZ = 200
TIMEOUT_S = 900
# (scale, passes over the trace batches): at least ten seconds of traffic for one worker (with the compiled walk)
QUICK = (5, 36)
FULL = (50, 3)
LOOP_IDLE = "event loop idle (waiting for records or the broker)"
FEED_THREAD = "context and policy feed threads"
CONSUMER_THREAD = "Faust's consumer thread (aiokafka fetching)"
OTHER = "other"
# A sample's stage is that of its innermost frame whose file path contains one of the stage's parts.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("OTLP decode", ("stream/ingest/formats/", "stream/ingest/decode.py", "google/protobuf/")),
    ("routing, resolution, entity-event encoding", (
        "stream/ingest/router.py", "stream/ingest/entity_events.py", "stream/ingest/merge.py", "stream/entities/")),
    ("correlate", ("stream/correlate/", "stream/policy/")),
    ("context facts applied on the loop", ("stream/worker/contextfeed.py", "stream/worker/topicfeed.py",
                                           "stream/worker/policyfeed.py")),
    ("hotpath worker wiring (agents, table, metrics)", ("stream/worker/", "prometheus_client/")),
    ("Faust/aiokafka plumbing", ("/faust/", "/aiokafka/", "/mode/")),
)
NATIVE_THREADS = "native threads (librdkafka's, of the feeds)"
ORDER = [name for name, _ in STAGES] + [CONSUMER_THREAD, FEED_THREAD, NATIVE_THREADS, LOOP_IDLE, OTHER]
LOOP_THREAD = "MainThread"  # Faust's worker runs the event loop on the main thread


@dataclass(frozen=True)
class Sample:
    """One line of a raw py-spy profile: the thread, its frames (root first) and how often they were seen."""

    thread_id: int
    thread_name: str
    frames: tuple[str, ...]
    count: int


def samples(lines: Iterable[str]) -> list[Sample]:
    """A raw profile recorded with ``--threads`` (lines ``thread (id): name;frame;...;frame count``)."""
    parsed = []
    for line in lines:
        stack, _, count = line.strip().rpartition(" ")
        if not stack.startswith("thread ("):
            continue
        thread, *stack_frames = stack.split(";")
        # "thread (id): name", or "thread (id)" when py-spy could not read the name (a thread ending)
        thread_id, _, name = thread[len("thread ("):].partition(")")
        parsed.append(Sample(int(thread_id), name.removeprefix(": "), tuple(stack_frames), int(count)))
    return parsed


def stage(sample: Sample) -> str:
    """The stage of a sample: by its thread, then by the innermost frame in a stage's files."""
    if sample.thread_name != LOOP_THREAD:
        if any("stream/worker/topicfeed.py" in frame for frame in sample.frames):
            return FEED_THREAD
        return CONSUMER_THREAD if any("/mode/threads.py" in frame for frame in sample.frames) else OTHER
    if sample.frames and "selectors.py" in sample.frames[-1]:
        return LOOP_IDLE
    for frame in reversed(sample.frames):
        for name, parts in STAGES:
            if any(part in frame for part in parts):
                return name
    return OTHER


def wall_shares(profile: list[Sample]) -> dict[str, float]:
    """Each stage's share of the event loop thread's samples, waiting included (a profile taken with --idle)."""
    counts = Counter({name: 0 for name in ORDER})
    for sample in profile:
        if sample.thread_name == LOOP_THREAD:
            counts[stage(sample)] += sample.count
    total = sum(counts.values()) or 1
    return {name: counts[name] / total for name in ORDER}


def cpu_seconds(profile: list[Sample], used: dict[int, float]) -> dict[str, float]:
    """CPU seconds per stage: each thread's CPU time (from /proc) split in proportion to its samples (a
    profile taken without --idle). A sampler cannot always tell a native wait from work (librdkafka's
    poll looks busy to it); /proc can, so it sets each thread's total. Threads without a Python frame
    (librdkafka's own) are a stage of their own."""
    by_thread: dict[int, Counter[str]] = {}
    for sample in profile:
        by_thread.setdefault(sample.thread_id, Counter())[stage(sample)] += sample.count
    seconds = dict.fromkeys(ORDER, 0.0)
    for thread_id, thread_seconds in used.items():
        stages = by_thread.get(thread_id) or Counter({NATIVE_THREADS: 1})
        total = sum(stages.values())
        for name, count in stages.items():
            seconds[name] += thread_seconds * count / total
    return seconds


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) each thread of process ``pid`` has used so far, by thread id."""
    seconds = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rpartition(")")[2].split()
        except OSError:  # the thread ended meanwhile
            continue
        seconds[int(task.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return seconds


def table(wall: dict[str, float], cpu: dict[str, float], spans: int) -> str:
    """Wall share, CPU share and CPU seconds per million spans of each stage."""
    width = max(map(len, ORDER))
    total = sum(cpu.values()) or 1.0
    rows = [f"{'stage':<{width}}  {'wall':>6}  {'CPU':>6}  {'CPU s/Mspan':>11}"]
    rows += [f"{name:<{width}}  {wall[name]:>6.1%}  {cpu[name] / total:>6.1%}  {cpu[name] * 1e6 / spans:>11.2f}"
             for name in ORDER]
    rows.append(f"{'all':<{width}}  {1:>6.0%}  {1:>6.0%}  {total * 1e6 / spans:>11.2f}")
    return "\n".join(rows)


def sampler(pid: int, path: Path, idle: bool) -> subprocess.Popen:
    """py-spy recording ``pid`` into ``path`` until it is sent SIGINT (non-blocking: the worker is never paused)."""
    beside = Path(sys.executable).with_name("py-spy")  # the test extra's, in the interpreter's environment
    spy = str(beside) if beside.exists() else shutil.which("py-spy") or "py-spy"
    command = [spy, "record", "--pid", str(pid), "--rate", str(RATE_HZ), "--format", "raw", "--threads",
               "--full-filenames", "--nonblocking", "--output", str(path)] + (["--idle"] if idle else [])
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop(spy: subprocess.Popen) -> None:
    spy.send_signal(signal.SIGINT)
    _, errors = spy.communicate(timeout=60)
    if spy.returncode != 0:
        raise RuntimeError(f"py-spy failed ({spy.returncode}): {errors.decode(errors='replace').strip()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the quick benchmark's scenario")
    parser.add_argument("--times", type=int, help="passes over the trace batches (default: 36 quick, 3 full)")
    args = parser.parse_args(argv)
    scale, times = QUICK if args.quick else FULL
    times = args.times or times
    scenario = cached_scenario(SEED, scale, minutes=10)
    spans = scenario.span_count * times
    stamp = time.strftime("%Y%m%dT%H%M%S")
    PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    paths = {idle: PROFILE_DIR / f"{stamp}-{'wall' if idle else 'cpu'}.txt" for idle in (True, False)}
    with fresh_topics(load_settings(), "profile") as settings:
        publish(settings, asset_records(settings, scenario))
        with running_workers(settings, 1, "profiled") as (worker,):
            wanted = {records_in(settings.topic_traces): len(scenario.trace_batches) * times,
                      records_in(settings.topic_findings): len(scenario.findings)}
            traffic = records(settings, Copies(scenario, settings).timed((times - 1) * len(scenario.trace_batches)))
            cpu_before = thread_cpu(worker.proc.pid)
            spies = [sampler(worker.proc.pid, path, idle) for idle, path in paths.items()]
            say(f"profiling worker pid {worker.proc.pid}: {spans:,} spans ({times} passes over the trace batches)")
            try:
                started = time.monotonic()
                publish(settings, finding_records(settings, scenario) + traffic)
                finished = wait_until(lambda: caught_up([metrics(worker)], wanted), TIMEOUT_S,
                                      "done with the traffic", [worker])
            finally:
                for spy in spies:
                    stop(spy)
            cpu_after = thread_cpu(worker.proc.pid)
    seconds = finished - started
    used = {thread: spent - cpu_before.get(thread, 0.0) for thread, spent in cpu_after.items()}
    cpu = cpu_seconds(samples(paths[False].read_text().splitlines()), used)
    print()
    print(table(wall_shares(samples(paths[True].read_text().splitlines())), cpu, spans))
    # Two samplers at RATE_HZ take CPU of their own: on a small machine the rate is lower than unwatched.
    print(f"\n{spans / seconds:,.0f} spans/s while sampled ({spans:,} spans in {seconds:.1f} s, load average "
          f"{os.getloadavg()[0]:.2f}); the worker's CPU: {sum(cpu.values()):.2f} s")
    for path in paths.values():
        print(f"raw profile: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
