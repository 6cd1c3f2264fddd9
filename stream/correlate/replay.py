"""Replay: the worker's engine over exported files, in one process, without Kafka.

How a user tries hotpath on a day of exported data, and how forensics asks "what would have been
escalated". Records are read in every format ``hotpath inspect`` accepts, merged in event-time order
(:func:`stream.ingest.merge.merged_records`, with memory bounded whatever the input's size) and
driven through :class:`stream.correlate.engine.Engine` as the worker's correlate agent drives it:
routed by the stream they came from, applied with deferred judging, settled every CHUNK_RECORDS
records, with a tick every window step of event time (the worker's timer ticks in wall time), which
sweeps and prunes on the worker's cadence. All entities share partition 0.

The merge's first pass learns the pods the traces name, so Falco alerts resolve to services as they
would in a stream where traces flow continuously, and bounds time by the data, since replay has no
wall clock to refuse a forged time by: records further than ``HOTPATH_MAX_EVENT_AGE_S`` from the
median event time of the input are skipped with the reason, so one record dated 2100 changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from stream.correlate.engine import CHUNK_RECORDS, Engine
from stream.correlate.state import EncodedStates
from stream.ingest.formats.assets import load_asset_file
from stream.ingest.merge import Progress, merged_records
from stream.policy.rules import Policy
from stream.settings import Settings

PARTITION = 0


def replay(settings: Settings, *, findings: Iterable[Path] = (), traces: Iterable[Path] = (),
           alerts: Iterable[Path] = (), assets: Iterable[Path] = (), errors: IO[str] | None = None,
           clock=None, chunk_records: int = CHUNK_RECORDS, progress: Progress | None = None,
           policy: Policy | None = None) -> Iterator[dict[str, Any]]:
    """Yield the escalation events the streaming job would emit for these files, judged by ``policy``.

    Mutes expire by event time here: the data is judged by the mutes that applied when it happened.
    """
    engine = Engine(settings, EncodedStates(), policy=policy, policy_time="event",
                    **({"clock": clock} if clock else {}))
    for path in ([settings.asset_file] if settings.asset_file else []) + list(assets):
        for asset in load_asset_file(path, settings.max_record_bytes, settings.max_json_depth):
            engine.route("assets", asset)
    engine.tick(PARTITION)  # the partition is assigned, and its (empty) state restored, before any record
    inputs = {"traces": traces, "findings": findings, "alerts": alerts}
    next_tick = None
    records = merged_records(inputs, engine.context.resolver, settings, errors, progress)
    for offset, (stream, record) in enumerate(records):
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
    yield from (escalation.record() for escalation in settlement.escalations)
    engine.release()


def _skip(errors: IO[str] | None, what: str) -> None:
    if errors is not None:
        errors.write(f"hotpath replay: skipped {what}\n")
