"""``hotpath replay``: the correlation engine over exported files, without Kafka (see stream.correlate.replay)."""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from pathlib import Path

import orjson

from stream.correlate.replay import replay
from stream.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--findings", nargs="+", type=Path, default=[], metavar="PATH",
                        help="CSPM findings: Prowler OCSF, Security Hub ASFF or AWS Config JSON")
    parser.add_argument("--traces", nargs="+", type=Path, default=[], metavar="PATH",
                        help="OTLP traces: protobuf (.binpb) or JSON lines, as the Collector exports them")
    parser.add_argument("--alerts", nargs="+", type=Path, default=[], metavar="PATH",
                        help="runtime alerts: Falco or GuardDuty JSON")
    parser.add_argument("--assets", nargs="+", type=Path, default=[], metavar="PATH",
                        help="asset context: a YAML or JSON asset file")
    parser.add_argument("--policy", nargs="+", type=Path, default=[], metavar="PATH",
                        help="policy files (Prowler mutelists or hotpath policies, told apart by content) to judge "
                             "by, instead of HOTPATH_POLICY_FILES")
    parser.add_argument("--out", type=Path, help="escalation events as NDJSON (default: stdout)")
    parser.add_argument("--siem-out", type=Path, help="the same escalations as OCSF Detection Findings, NDJSON")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from stream.deliver.escalation import masked_event
    from stream.deliver.ocsf import to_ocsf
    from stream.ingest.merge import Progress
    from stream.policy.check import policy_or_config_error

    missing = [str(p) for p in (*args.findings, *args.traces, *args.alerts, *args.assets) if not p.exists()]
    if missing:
        print(f"hotpath replay: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    policy = policy_or_config_error(args.policy or settings.policy_files)
    with ExitStack() as stack:
        out = stack.enter_context(args.out.open("wb")) if args.out else sys.stdout.buffer
        siem = stack.enter_context(args.siem_out.open("wb")) if args.siem_out else None
        count = 0
        for event in replay(settings, findings=args.findings, traces=args.traces, alerts=args.alerts,
                            assets=args.assets, errors=sys.stderr, policy=policy,
                            progress=Progress(sys.stderr, "hotpath replay")):
            out.write(orjson.dumps(masked_event(event)) + b"\n")  # as the worker publishes it
            if siem is not None:
                siem.write(orjson.dumps(to_ocsf(event)) + b"\n")
            count += 1
    print(f"hotpath replay: {count} escalation events", file=sys.stderr)
    return 0
