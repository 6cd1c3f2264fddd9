"""Replay's input, streamed: the records of many exported files, merged in event-time order.

:func:`merged_records` reads the files twice, so that memory follows the correlation state, not
the input size:

1. A scan decodes every file once, in the order traces, findings, alerts. It keeps a bounded,
   seeded sample of the event times (its median is the centre of the plausible times: a handful of
   forged records cannot move it) and, per file, how many records it holds, its earliest time and
   how far out of order its records come. Decoding the traces teaches the resolver the pods they
   name, so the alerts read in the second pass resolve pods to services as if all traces came first.
2. The merge decodes each file again, lazily: a file is opened only when the merge reaches its
   earliest time, its records pass the plausibility check and a reorder buffer, and a heap picks
   the earliest head among the open files. Ties go to the file read first, so the result is the
   stable sort by event time of all the records in read order.

A file's reorder buffer spans the disorder the scan saw in it, at most the allowed lateness
(``HOTPATH_ALLOWED_LATENESS_S``) and :data:`REORDER_LIMIT` records. A record that comes later
than that leaves the buffer as soon as it is read, behind records newer than itself: it is late,
and the correlator takes it as the worker takes a late record (it counts while its window is
still open to lateness, else it is ignored).
"""

from __future__ import annotations

import heapq
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from stream.entities.resolve import EntityResolver
from stream.ingest.files import iter_file_records
from stream.ingest.formats.eventtime import TimeBounds, check_times
from stream.models import DecodeError, NormalizedRecord
from stream.settings import Settings

READ_ORDER = ("traces", "findings", "alerts")  # traces first: their pods resolve the alerts
STREAM_KINDS = {"traces": "touch", "findings": "finding", "alerts": "alert"}
SAMPLE_SIZE = 10_001  # event times kept to find the median; odd, so the median is one of them
REORDER_LIMIT = 10_000  # records a file's reorder buffer holds at most
QUIET_S = 2.0  # inputs read faster than this show no progress
_UNITS = ("B", "kB", "MB", "GB", "TB")


def merged_records(inputs: Mapping[str, Iterable[Path]], resolver: EntityResolver, settings: Settings,
                   errors: IO[str] | None = None, progress: Progress | None = None,
                   ) -> Iterator[tuple[str, NormalizedRecord]]:
    """The decoded records of the files of each stream (``traces``, ``findings``, ``alerts``) as
    ``(stream, record)`` in event-time order. Undecodable input, records of another kind than their
    stream's and records further than ``HOTPATH_MAX_EVENT_AGE_S`` from the median time are skipped,
    with the reason on ``errors``; ``progress`` follows the two passes."""
    files = [(stream, Path(path)) for stream in READ_ORDER for path in inputs.get(stream, ())]
    reader = _Reader(resolver, settings, errors, progress or Progress(None, ""))
    try:
        scans, centre = reader.scan(files)
        if centre is None:
            return
        bounds = TimeBounds.around(centre, settings.max_event_age_s)
        reader.progress.phase("merging (pass 2 of 2)", (path for _, path in files))
        for scan, record in _merged(scans, lambda scan: reader.ordered(scan, bounds)):
            yield scan.stream, record
    finally:
        reader.progress.finish()


@dataclass(slots=True)
class FileScan:
    """What the first pass learned of one file."""

    index: int  # position in read order: breaks ties of event time
    stream: str
    path: Path
    records: int = 0
    earliest: float = float("inf")
    newest: float = float("-inf")
    disorder: float = 0.0  # how far, in event time, a record came after a newer one

    def add(self, ts: float) -> None:
        self.records += 1
        self.earliest = min(self.earliest, ts)
        self.newest = max(self.newest, ts)
        self.disorder = max(self.disorder, self.newest - ts)


class TimeSample:
    """A uniform sample of at most ``size`` event times (reservoir sampling), seeded so that a replay
    repeats itself; while fewer times came, it holds them all and the median is exact."""

    def __init__(self, size: int = SAMPLE_SIZE) -> None:
        self.size = size
        self.times: list[float] = []
        self.seen = 0
        self._random = random.Random(0)

    def add(self, ts: float) -> None:
        self.seen += 1
        if len(self.times) < self.size:
            self.times.append(ts)
            return
        slot = self._random.randrange(self.seen)
        if slot < self.size:
            self.times[slot] = ts

    def median(self) -> float | None:
        return sorted(self.times)[len(self.times) // 2] if self.times else None


class _Reader:
    """Both passes over the files, sharing the resolver, the settings and where to report."""

    def __init__(self, resolver: EntityResolver, settings: Settings, errors: IO[str] | None,
                 progress: Progress) -> None:
        self.resolver = resolver
        self.settings = settings
        self.errors = errors
        self.progress = progress

    def scan(self, files: list[tuple[str, Path]]) -> tuple[list[FileScan], float | None]:
        """Every file's :class:`FileScan`, and the median event time (None without records)."""
        self.progress.phase("scanning (pass 1 of 2)", (path for _, path in files))
        sample = TimeSample()
        scans = []
        for index, (stream, path) in enumerate(files):
            scan = FileScan(index, stream, path)
            for record in self.records(stream, path, report=True):
                scan.add(record.event_time)
                sample.add(record.event_time)
            scans.append(scan)
        return scans, sample.median()

    def ordered(self, scan: FileScan, bounds: TimeBounds) -> Iterator[NormalizedRecord]:
        """The file's plausible records, re-ordered as far as its buffer allows (see the module)."""
        slack_s = min(scan.disorder, self.settings.allowed_lateness_s)
        return _reordered(self._plausible(self.records(scan.stream, scan.path, report=False), bounds),
                          slack_s, REORDER_LIMIT)

    def records(self, stream: str, path: Path, *, report: bool) -> Iterator[NormalizedRecord]:
        """A file's records of its stream's kind; the rest is skipped, said when ``report`` (the scan)."""
        for record in iter_file_records(path, self.resolver, self.settings, on_open=self.progress.opened):
            self.progress.advance()
            if record.kind == STREAM_KINDS[stream]:
                yield record
            elif report and record.kind == "error":
                self.skip(f"{record.origin}: {record.reason}")
            elif report:
                self.skip(f"{record.kind} record in {path}, given as {stream}")

    def _plausible(self, records: Iterator[NormalizedRecord], bounds: TimeBounds) -> Iterator[NormalizedRecord]:
        for record in records:
            try:
                check_times(record, bounds)
            except DecodeError as exc:
                self.skip(exc.reason)
                continue
            yield record

    def skip(self, what: str) -> None:
        if self.errors is not None:
            self.progress.interrupt()
            self.errors.write(f"hotpath replay: skipped {what}\n")


def _reordered(records: Iterable[NormalizedRecord], slack_s: float, limit: int) -> Iterator[NormalizedRecord]:
    """``records`` by event time, held until a record ``slack_s`` newer was read (or ``limit`` are held).

    Equal times keep their order. With a slack of 0, records pass straight through.
    """
    held: list[tuple[float, int, NormalizedRecord]] = []
    newest = float("-inf")
    for order, record in enumerate(records):
        newest = max(newest, record.event_time)
        heapq.heappush(held, (record.event_time, order, record))
        while held and (held[0][0] <= newest - slack_s or len(held) > limit):
            yield heapq.heappop(held)[2]
    while held:
        yield heapq.heappop(held)[2]


def _merged(scans: list[FileScan], open_file: Callable[[FileScan], Iterator[NormalizedRecord]],
            ) -> Iterator[tuple[FileScan, NormalizedRecord]]:
    """k-way merge by (event time, read order) that opens a file only once the merge reaches its
    earliest time, so that only the files whose times overlap are open at once."""
    waiting = sorted((scan for scan in scans if scan.records), key=lambda s: (s.earliest, s.index), reverse=True)
    heads: list[tuple[float, int, NormalizedRecord, FileScan, Iterator[NormalizedRecord]]] = []
    while heads or waiting:
        while waiting and (not heads or (waiting[-1].earliest, waiting[-1].index) <= heads[0][:2]):
            scan = waiting.pop()
            lane = open_file(scan)
            first = next(lane, None)
            if first is not None:
                heapq.heappush(heads, (first.event_time, scan.index, first, scan, lane))
        if not heads:
            continue
        _, index, record, scan, lane = heads[0]
        yield scan, record
        following = next(lane, None)
        if following is None:
            heapq.heappop(heads)
        else:
            heapq.heapreplace(heads, (following.event_time, index, following, scan, lane))


class Progress:
    """How far reading got, for inputs that take more than :data:`QUIET_S`: records read, share of
    the bytes and rate. A terminal gets one line rewritten in place every second, a log a line every
    ``log_every_s``; nothing is shown for a quick input (or when ``out`` is None)."""

    def __init__(self, out: IO[str] | None, label: str, *, clock: Callable[[], float] = time.monotonic,
                 log_every_s: float = 5.0) -> None:
        self.out = out
        self.label = label
        self.clock = clock
        self.tty = out is not None and out.isatty()
        self.every_s = 1.0 if self.tty else log_every_s
        self._due = float("inf")
        self._shown = False
        self._line_open = False
        self._width = 0
        self._name = ""
        self._records = 0
        self._since = 0.0
        self._total_bytes = 0
        self._closed_bytes = 0
        self._open: list[tuple[IO[bytes], int]] = []

    def phase(self, name: str, paths: Iterable[Path]) -> None:
        """A pass over the files at ``paths`` begins: counts start again."""
        now = self.clock()
        if self._due == float("inf"):
            self._due = now + QUIET_S
        self._name = name
        self._records = 0
        self._since = now
        self._total_bytes = sum(_size(path) for path in paths)
        self._closed_bytes = 0
        self._open = []

    def opened(self, stream: IO[bytes]) -> None:
        """A file was opened; how far it is read is asked when a line is due."""
        if self.out is not None:
            self._open.append((stream, os.fstat(stream.fileno()).st_size))

    def advance(self) -> None:
        """One more record read."""
        self._records += 1
        if self.out is not None and (now := self.clock()) >= self._due:
            self._show(now)

    def interrupt(self) -> None:
        """End the line a terminal is rewriting, so that another message starts on its own line."""
        if self._line_open and self.out is not None:
            self.out.write("\n")
            self._line_open = False
            self._width = 0

    def finish(self) -> None:
        """Show the final count, if anything was shown at all."""
        if self._shown:
            self._show(self.clock())
            self.interrupt()

    def _show(self, now: float) -> None:
        assert self.out is not None
        elapsed = max(now - self._since, 1e-9)
        share = 100.0 * self._read_bytes() / self._total_bytes if self._total_bytes else 100.0
        line = (f"{self.label}: {self._name}: {self._records:,} records, {share:.0f}% of "
                f"{_human_bytes(self._total_bytes)}, {self._records / elapsed:,.0f} records/s")
        if self.tty:
            self.out.write("\r" + line.ljust(self._width))
            self._width = len(line)
            self._line_open = True
        else:
            self.out.write(line + "\n")
        self.out.flush()
        self._shown = True
        self._due = now + self.every_s

    def _read_bytes(self) -> int:
        still_open = []
        for stream, size in self._open:
            if stream.closed:
                self._closed_bytes += size
            else:
                still_open.append((stream, size))
        self._open = still_open
        return self._closed_bytes + sum(stream.tell() for stream, _ in still_open)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _human_bytes(size: int) -> str:
    scaled, unit = float(size), 0
    while scaled >= 1000 and unit < len(_UNITS) - 1:
        scaled /= 1000
        unit += 1
    return f"{scaled:.1f} {_UNITS[unit]}" if unit else f"{size} B"
