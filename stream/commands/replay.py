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
    add_input_arguments(parser)
    parser.add_argument("--policy", nargs="+", type=Path, default=[], metavar="PATH",
                        help="policy files (Prowler mutelists or hotpath policies, told apart by content) to judge "
                             "by, instead of HOTPATH_POLICY_FILES")
    parser.add_argument("--out", type=Path, help="escalation events as NDJSON (default: stdout)")
    parser.add_argument("--siem-out", type=Path, help="the same escalations as OCSF Detection Findings, NDJSON")
    parser.add_argument("--audit-out", type=Path, help="the audit records of the escalations (hotpath.audit), NDJSON")
    parser.add_argument("--compliance-out", type=Path,
                        help="the compliance view at the end: failing controls by framework with their top "
                             "escalations, JSON")


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """The exported inputs replay reads (also those of ``hotpath policy explain``)."""
    parser.add_argument("--findings", nargs="+", type=Path, default=[], metavar="PATH",
                        help="CSPM findings: Prowler OCSF, Security Hub ASFF or AWS Config JSON")
    parser.add_argument("--traces", nargs="+", type=Path, default=[], metavar="PATH",
                        help="OTLP traces: protobuf (.binpb) or JSON lines, as the Collector exports them")
    parser.add_argument("--alerts", nargs="+", type=Path, default=[], metavar="PATH",
                        help="runtime alerts: Falco or GuardDuty JSON")
    parser.add_argument("--assets", nargs="+", type=Path, default=[], metavar="PATH",
                        help="asset context: a YAML or JSON asset file")


def missing_inputs(args: argparse.Namespace) -> list[str]:
    """The input files given that do not exist."""
    return [str(p) for p in (*args.findings, *args.traces, *args.alerts, *args.assets) if not p.exists()]


def run(args: argparse.Namespace, settings: Settings) -> int:
    from stream.correlate.compliance import compliance_view
    from stream.deliver.escalation import masked_event
    from stream.deliver.ocsf import to_ocsf
    from stream.ingest.merge import Progress
    from stream.policy.audit import audit_records
    from stream.policy.check import policy_or_config_error
    from stream.worker.web import EscalationBoard

    missing = missing_inputs(args)
    if missing:
        print(f"hotpath replay: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    policy = policy_or_config_error(args.policy or settings.policy_files)
    with ExitStack() as stack:
        out = stack.enter_context(args.out.open("wb")) if args.out else sys.stdout.buffer
        siem = stack.enter_context(args.siem_out.open("wb")) if args.siem_out else None
        audit = stack.enter_context(args.audit_out.open("wb")) if args.audit_out else None
        board = EscalationBoard()  # the current escalations, as the worker's board holds them
        count = 0
        for event in replay(settings, findings=args.findings, traces=args.traces, alerts=args.alerts,
                            assets=args.assets, errors=sys.stderr, policy=policy,
                            progress=Progress(sys.stderr, "hotpath replay")):
            published = masked_event(event)
            out.write(orjson.dumps(published) + b"\n")  # as the worker publishes it
            if siem is not None:
                siem.write(orjson.dumps(to_ocsf(event, trace_url_template=settings.trace_url_template)) + b"\n")
            if audit is not None:
                audit.writelines(orjson.dumps(record) + b"\n"
                                 for _, record in audit_records([published], board.suppression_of))
            board.record(published)
            count += 1
        if args.compliance_out:
            args.compliance_out.write_bytes(orjson.dumps(compliance_view(board.current.values()),
                                                         option=orjson.OPT_INDENT_2) + b"\n")
    print(f"hotpath replay: {count} escalation events", file=sys.stderr)
    return 0
