"""Replay: the worker's engine over exported files, in one process, without Kafka.

How a user tries hotpath on a day of exported data, and how forensics asks "what would have been
escalated". Records are read in every format ``hotpath inspect`` accepts, merged in event-time order
(:func:`merged_records`) and driven through :class:`stream.correlate.engine.Engine` as the worker's
correlate agent drives it: routed by the stream they came from, applied with deferred judging,
settled every CHUNK_RECORDS records, with a tick every window step of event time (the worker's timer
ticks in wall time), which sweeps and prunes on the worker's cadence. All entities share partition 0.

Trace files are read before alert files so that the pods they name are known when Falco alerts are
resolved, as they would be in a stream where traces flow continuously (the resolver learns pods
while the traces are decoded).

Replay has no wall clock to refuse a forged time by, so the data bounds it: records further than
``HOTPATH_MAX_EVENT_AGE_S`` from the median event time of all the records are skipped with the
reason. A handful of forged records cannot move the median, so one record dated 2100 changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from stream.correlate.engine import CHUNK_RECORDS, EncodedStates, Engine
from stream.entities.resolve import EntityResolver
from stream.ingest.files import iter_file_records
from stream.ingest.formats.assets import load_asset_file
from stream.ingest.formats.eventtime import TimeBounds, check_times
from stream.models import DecodeError, NormalizedRecord
from stream.settings import Settings

PARTITION = 0
STREAM_KINDS = {"traces": "touch", "findings": "finding", "alerts": "alert"}
READ_ORDER = ("traces", "findings", "alerts")  # traces first: their pods resolve the alerts that follow


def replay(settings: Settings, *, findings: Iterable[Path] = (), traces: Iterable[Path] = (),
           alerts: Iterable[Path] = (), assets: Iterable[Path] = (), errors: IO[str] | None = None,
           clock=None, chunk_records: int = CHUNK_RECORDS) -> Iterator[dict[str, Any]]:
    """Yield the escalation events the streaming job would emit for these files."""
    engine = Engine(settings, EncodedStates(), **({"clock": clock} if clock else {}))
    for path in ([settings.asset_file] if settings.asset_file else []) + list(assets):
        for asset in load_asset_file(path, settings.max_record_bytes, settings.max_json_depth):
            engine.route("assets", asset)
    engine.tick(PARTITION)  # the partition is assigned, and its (empty) state restored, before any record
    inputs = {"traces": traces, "findings": findings, "alerts": alerts}
    next_tick = None
    for offset, (stream, record) in enumerate(merged_records(inputs, engine.context.resolver, settings, errors)):
        if next_tick is not None and engine.correlator.watermark >= next_tick:
            engine.tick(PARTITION)
        engine.apply_events(engine.route(stream, record).events, PARTITION, offset, origin=record)
        if offset % chunk_records == chunk_records - 1 or engine.full:
            yield from _settled(engine, errors)
        if engine.correlator.watermark > float("-inf"):
            next_tick = engine.correlator.spec.bucket_start(engine.correlator.watermark) + settings.window_step_s
    engine.tick(PARTITION)
    yield from _settled(engine, errors)


def _settled(engine: Engine, errors: IO[str] | None) -> Iterator[dict[str, Any]]:
    """Settle the chunk; say which entities could not be judged (the worker dead-letters their records)."""
    settlement = engine.settle()
    for reason, _ in settlement.failures:
        _skip(errors, reason)
    yield from (escalation.event for escalation in settlement.escalations)
    engine.release()


def merged_records(inputs: dict[str, Iterable[Path]], resolver: EntityResolver, settings: Settings,
                   errors: IO[str] | None) -> Iterator[tuple[str, NormalizedRecord]]:
    """The decoded records of every file as (stream, record), in event-time order, the implausible skipped.

    The seam for a reader that merges files lazily: today every record is read, then sorted.
    """
    records: list[tuple[str, NormalizedRecord]] = []
    for stream in READ_ORDER:
        for path in inputs.get(stream, ()):
            for record in iter_file_records(Path(path), resolver, settings):
                if record.kind == "error":
                    _skip(errors, f"{record.origin}: {record.reason}")
                elif record.kind != STREAM_KINDS[stream]:  # the worker's decoder of that stream refuses it too
                    _skip(errors, f"a {record.kind} in {path}, given as {stream}")
                else:
                    records.append((stream, record))
    kept = plausible(records, settings.max_event_age_s, errors)
    return iter(sorted(kept, key=lambda pair: pair[1].event_time))


def plausible(records: list[tuple[str, NormalizedRecord]], max_age_s: float,
              errors: IO[str] | None) -> list[tuple[str, NormalizedRecord]]:
    """The (stream, record) pairs whose event times lie within ``max_age_s`` of the median of all of them."""
    times = sorted(record.event_time for _, record in records)
    if not times:
        return records
    bounds = TimeBounds.around(times[len(times) // 2], max_age_s)
    kept = []
    for pair in records:
        try:
            check_times(pair[1], bounds)
        except DecodeError as exc:
            _skip(errors, exc.reason)
            continue
        kept.append(pair)
    return kept


def _skip(errors: IO[str] | None, what: str) -> None:
    if errors is not None:
        errors.write(f"hotpath replay: skipped {what}\n")
