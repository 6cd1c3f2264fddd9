"""``hotpath replay``: the correlation core in one process, over exported files, without Kafka.

How a user tries hotpath on a day of exported data, and how forensics asks "what would have been
escalated". Files are read in every format ``hotpath inspect`` accepts, merged in event-time order,
and run through the same Router and Correlator the worker uses; context facts apply at once and
re-scoring ticks run every window step of event time, as the worker's timer does in wall time.

Trace files are read before alert files so that the pods they name are known when Falco alerts are
resolved, as they would be in a stream where traces flow continuously (the resolver learns pods
while the traces are decoded).

Replay has no wall clock to refuse a forged time by, so the data bounds it: records further than
``HOTPATH_MAX_EVENT_AGE_S`` from the median event time of all the records are skipped with the
reason. A handful of forged records cannot move the median, so one record dated 2100 changes nothing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

import orjson

from stream.correlate.correlator import Correlator
from stream.entities.context import Context
from stream.ingest.formats.assets import load_asset_file
from stream.ingest.merge import Progress, merged_records
from stream.ingest.router import Routed, Router
from stream.models import Finding, NormalizedRecord, Touch, TraceBatch
from stream.settings import Settings


def replay(settings: Settings, *, findings: Iterable[Path] = (), traces: Iterable[Path] = (),
           alerts: Iterable[Path] = (), assets: Iterable[Path] = (), errors: IO[str] | None = None,
           clock=None, progress: Progress | None = None) -> Iterator[dict[str, Any]]:
    """Yield the escalation events the streaming job would emit for these files."""
    context = Context(max_path_depth=settings.max_path_depth)
    router = Router(context, settings.window_step_s)
    store: dict[str, Any] = {}
    correlator = Correlator(settings, context, store, **({"clock": clock} if clock else {}))
    for path in ([settings.asset_file] if settings.asset_file else []) + list(assets):
        for asset in load_asset_file(path, settings.max_record_bytes, settings.max_json_depth):
            router.asset(asset)

    inputs = {"traces": traces, "findings": findings, "alerts": alerts}
    records = merged_records(inputs, context.resolver, settings, errors, progress)

    next_tick = None
    position = 0
    for _, record in records:
        if next_tick is not None and correlator.watermark >= next_tick:
            yield from (e.record() for e in correlator.tick())
        for entity, event in _route(router, record).events:
            position += 1
            yield from (e.record() for e in correlator.process(entity, event, position=position))
        _report_failures(correlator, errors)
        if correlator.watermark > float("-inf"):
            next_tick = correlator.spec.bucket_start(correlator.watermark) + settings.window_step_s
    yield from (e.record() for e in correlator.tick())
    _report_failures(correlator, errors)


def _report_failures(correlator: Correlator, errors: IO[str] | None) -> None:
    """Say which entities could not be judged (the worker dead-letters their records), and go on."""
    for reason in correlator.failures.values():
        if errors is not None:
            errors.write(f"hotpath replay: skipped {reason}\n")
    correlator.failures.clear()


def _route(router: Router, record: NormalizedRecord) -> Routed:
    if isinstance(record, Touch):
        return router.traces(TraceBatch([record]))
    if isinstance(record, Finding):
        return router.finding(record)
    return router.alert(record)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--findings", nargs="+", type=Path, default=[], metavar="PATH",
                        help="CSPM findings: Prowler OCSF, Security Hub ASFF or AWS Config JSON")
    parser.add_argument("--traces", nargs="+", type=Path, default=[], metavar="PATH",
                        help="OTLP traces: protobuf (.binpb) or JSON lines, as the Collector exports them")
    parser.add_argument("--alerts", nargs="+", type=Path, default=[], metavar="PATH",
                        help="runtime alerts: Falco or GuardDuty JSON")
    parser.add_argument("--assets", nargs="+", type=Path, default=[], metavar="PATH",
                        help="asset context: a YAML or JSON asset file")
    parser.add_argument("--out", type=Path, help="escalation events as NDJSON (default: stdout)")
    parser.add_argument("--siem-out", type=Path, help="the same escalations as OCSF Detection Findings, NDJSON")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from stream.deliver.escalation import masked_event
    from stream.deliver.ocsf import to_ocsf

    missing = [str(p) for p in (*args.findings, *args.traces, *args.alerts, *args.assets) if not p.exists()]
    if missing:
        print(f"hotpath replay: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    with ExitStack() as stack:
        out = stack.enter_context(args.out.open("wb")) if args.out else sys.stdout.buffer
        siem = stack.enter_context(args.siem_out.open("wb")) if args.siem_out else None
        count = 0
        for event in replay(settings, findings=args.findings, traces=args.traces, alerts=args.alerts,
                            assets=args.assets, errors=sys.stderr, progress=Progress(sys.stderr, "hotpath replay")):
            out.write(orjson.dumps(masked_event(event)) + b"\n")  # as the worker publishes it
            if siem is not None:
                siem.write(orjson.dumps(to_ocsf(event)) + b"\n")
            count += 1
    print(f"hotpath replay: {count} escalation events", file=sys.stderr)
    return 0
