"""``hotpath aws pull-findings`` and ``hotpath aws sync-assets``: the command lines of the AWS connectors.

The connectors (:mod:`stream.sources.aws`) need boto3, the ``aws`` extra, so they are imported only
when a command runs: ``hotpath --help`` works without it, and a command without it says what to install.
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from stream.settings import Settings
from stream.sources.aws import ASSET_FIELDS, DEFAULT_INTERVAL_S, MAX_PAGE_SIZE, SOURCES

if TYPE_CHECKING:
    from stream.sources.aws.session import AccountOptions


@dataclass(frozen=True)
class Subcommand:
    """One ``hotpath aws`` command, with what :mod:`stream.commands.main` asks of a command module."""

    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, Settings], int]


def _add_account_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every ``hotpath aws`` command shares."""
    parser.add_argument("--regions", type=_names, default=(),
                        help="comma-separated regions (default: the standard chain's region)")
    parser.add_argument("--role-arn", action="append", default=[], metavar="ARN",
                        help="read the account of this role by assuming it (repeat for several accounts); "
                             "without it, the account of the standard chain's credentials")
    parser.add_argument("--external-id", help="the external id the roles' trust policies require")
    parser.add_argument("--endpoint-url", help="send every AWS call here (testing; also HOTPATH_AWS_ENDPOINT_URL)")


def _account_options(args: argparse.Namespace) -> AccountOptions:
    from stream.sources.aws.session import AccountOptions

    return AccountOptions(regions=args.regions, role_arns=tuple(args.role_arn), external_id=args.external_id,
                          endpoint_url=args.endpoint_url)


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


# --- pull-findings --------------------------------------------------------------------------------


def _add_pull_findings_arguments(parser: argparse.ArgumentParser) -> None:
    _add_account_arguments(parser)
    parser.add_argument("--source", action="append", choices=SOURCES,
                        help="pull only this source (repeatable; default: securityhub and config)")
    parser.add_argument("--once", action="store_true",
                        help="one pass, then exit (non-zero when nothing could be pulled)")
    parser.add_argument("--interval", type=_interval, default=DEFAULT_INTERVAL_S, metavar="SECONDS",
                        help=f"seconds between passes when polling (default {DEFAULT_INTERVAL_S:.0f})")
    parser.add_argument("--out", type=Path, metavar="FILE",
                        help="append NDJSON to FILE instead of publishing; the cursor lives in FILE.cursor.json")
    parser.add_argument("--record-state", action="append", choices=("ACTIVE", "ARCHIVED"),
                        help="Security Hub RecordState to pull (repeatable; default: both, so archiving resolves)")
    parser.add_argument("--workflow-status", action="append",
                        choices=("NEW", "NOTIFIED", "RESOLVED", "SUPPRESSED"),
                        help="Security Hub Workflow.Status to pull (repeatable; default: all)")
    parser.add_argument("--product-name", action="append", metavar="NAME",
                        help="Security Hub ProductName to pull, e.g. 'Security Hub', GuardDuty (repeatable)")
    parser.add_argument("--page-size", type=_page_size, default=MAX_PAGE_SIZE,
                        help=f"findings per GetFindings page (1-{MAX_PAGE_SIZE})")


def _interval(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


def _page_size(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_PAGE_SIZE:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_PAGE_SIZE}")
    return value


def _run_pull_findings(args: argparse.Namespace, settings: Settings) -> int:
    """One pass (``--once``), or a pass every ``--interval`` seconds until SIGTERM."""
    from stream.sources.aws.cursor import StateError
    from stream.sources.aws.findings import PullOptions, open_destination, pull_once
    from stream.sources.aws.publish import FileSink, PublishError
    from stream.sources.aws.session import report

    options = PullOptions(accounts=_account_options(args), sources=tuple(args.source or SOURCES),
                          record_states=tuple(args.record_state or ()),
                          workflow_statuses=tuple(args.workflow_status or ()),
                          product_names=tuple(args.product_name or ()), page_size=args.page_size)
    try:
        store, sink = open_destination(settings, args.out)
    except (StateError, PublishError) as exc:
        report(f"hotpath: {exc}")
        return 1
    stop = threading.Event()
    if not args.once:
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while True:
            pulled, failed = pull_once(options, settings, store, sink)
            if args.once:
                return 1 if failed and not pulled else 0
            if stop.wait(args.interval):
                return 0
    finally:
        if isinstance(sink, FileSink):
            sink.close()


# --- sync-assets ----------------------------------------------------------------------------------


def _add_sync_assets_arguments(parser: argparse.ArgumentParser) -> None:
    _add_account_arguments(parser)
    parser.add_argument("--tag-key", action="append", default=[], metavar="FIELD=KEY",
                        help=f"read asset FIELD from tag KEY (repeatable; fields: {', '.join(ASSET_FIELDS)}; "
                             f"an empty KEY ignores the field)")
    parser.add_argument("--out", type=Path, metavar="FILE", help="write the asset file instead of publishing")


def _run_sync_assets(args: argparse.Namespace, settings: Settings) -> int:
    """Every account's assets to ``--out`` or, those that changed, to the assets topic."""
    from stream.sources.aws.assets import collect_assets, publish_changed, tag_keys, write_asset_file
    from stream.sources.aws.cursor import StateError
    from stream.sources.aws.publish import PublishError
    from stream.sources.aws.session import AwsError, open_targets, report

    keys = tag_keys(settings, args.tag_key)
    try:
        targets = open_targets(_account_options(args), settings)
    except AwsError as exc:
        report(f"hotpath: {exc}")
        return 1
    if targets.unreachable:  # an asset set without an account's assets would forget them
        for line in targets.unreachable:
            report(f"hotpath: {line}")
        return 1
    assets, failed = collect_assets(targets, keys)
    if args.out is not None:
        if failed:
            report(f"hotpath: not writing {args.out}: it would lack the assets of {', '.join(failed)}")
            return 1
        try:
            write_asset_file(args.out, assets)
        except OSError as exc:
            report(f"hotpath: cannot write {args.out}: {exc.strerror}")
            return 1
        report(f"assets: wrote {len(assets)} to {args.out}")
        return 0
    try:
        published = publish_changed(settings, assets)
    except (PublishError, StateError) as exc:
        report(f"hotpath: {exc}")
        return 1
    report(f"assets: published {published} changed of {len(assets)} to {settings.topic_assets}")
    return 1 if failed else 0


pull_findings = Subcommand(_add_pull_findings_arguments, _run_pull_findings)
sync_assets = Subcommand(_add_sync_assets_arguments, _run_sync_assets)
