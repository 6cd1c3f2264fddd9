"""``hotpath aws pull-findings``: Security Hub findings and AWS Config non-compliance onto ``hotpath.findings``.

Security Hub findings (``GetFindings``) are published as ASFF, unchanged, one record per finding keyed
by its ``Id``. AWS Config results (``DescribeComplianceByConfigRule`` for the rules, then
``GetComplianceDetailsByConfigRule`` per rule) are published as the EventBridge event AWS Config emits
itself, detail-type "Config Rules Compliance Change" (source ``aws.config``; ``detail`` with resourceId,
resourceType, configRuleName, awsRegion, awsAccountId and newEvaluationResult), so one decoder reads
this pull and an EventBridge rule alike. Those APIs do not return the rule's ARN, so the event's
``resources`` is empty and ``detail.configRuleARN`` absent. The first pull of an account and region
publishes NON_COMPLIANT results; later pulls also publish results recorded COMPLIANT since the
cursor, which resolve what was open.

Cursors (see :mod:`stream.sources.aws.cursor`) make repeated and restarted pulls publish each update once.
A pass covers every account, region and source; one that fails is reported and retried on the next
pass while the others are pulled, so one region without AWS Config does not stop the rest.
"""

from __future__ import annotations

import argparse
import signal
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from stream.models import rfc3339
from stream.settings import Settings
from stream.sources.aws.cursor import (
    Cursor,
    FileCursorStore,
    Progress,
    StateError,
    TopicCursorStore,
    parse_time,
)
from stream.sources.aws.publish import FileSink, PublishError, TopicSink
from stream.sources.aws.session import AwsError, Scope, open_targets, report
from stream.sources.aws.session import add_arguments as add_aws_arguments

SOURCES = ("securityhub", "config")
DEFAULT_INTERVAL_S = 300.0
# A stable namespace for the ids of Config events this pull synthesizes, so a re-publish has the same id.
_CONFIG_EVENT_NAMESPACE = uuid.UUID("5d0f8c1e-7a0b-4c55-9a51-6f1f0d8e2a47")

Stamped = tuple[str, datetime, dict[str, Any]]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_aws_arguments(parser)
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
    parser.add_argument("--page-size", type=_page_size, default=100, help="findings per GetFindings page (1-100)")


def _interval(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


def _page_size(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError("must be between 1 and 100")
    return value


def securityhub_filters(start: Cursor, args, now: datetime) -> dict[str, Any]:
    """``AwsSecurityFindingFilters`` for one pass: the user's filters and ``UpdatedAt`` from the cursor.

    ``Start`` is the cursor rounded down to the second (the cursor drops what it already published),
    ``End`` a day ahead of now, so a slightly fast provider clock is not cut off.
    """
    filters: dict[str, Any] = {}
    for field, values in (("RecordState", args.record_state), ("WorkflowStatus", args.workflow_status),
                          ("ProductName", args.product_name)):
        if values:
            filters[field] = [{"Value": value, "Comparison": "EQUALS"} for value in dict.fromkeys(values)]
    if start.updated_at is not None:
        filters["UpdatedAt"] = [{"Start": _whole_seconds(start.updated_at),
                                 "End": _whole_seconds(now + timedelta(days=1))}]
    return filters


def _whole_seconds(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def compliance_change_event(result: dict[str, Any], account: str, region: str) -> dict[str, Any]:
    """A ``GetComplianceDetailsByConfigRule`` evaluation result as AWS Config's EventBridge event."""
    identifier = result["EvaluationResultIdentifier"]
    qualifier = identifier["EvaluationResultQualifier"]
    recorded = rfc3339(parse_time(result["ResultRecordedTime"]))
    event_qualifier = {
        "configRuleName": qualifier["ConfigRuleName"],
        "resourceType": qualifier["ResourceType"],
        "resourceId": qualifier["ResourceId"],
    }
    if qualifier.get("EvaluationMode"):
        event_qualifier["evaluationMode"] = qualifier["EvaluationMode"]
    evaluation = {
        "evaluationResultIdentifier": {
            "evaluationResultQualifier": event_qualifier,
            "orderingTimestamp": rfc3339(parse_time(identifier["OrderingTimestamp"])),
        },
        "complianceType": result["ComplianceType"],
        "resultRecordedTime": recorded,
        "configRuleInvokedTime": rfc3339(parse_time(result["ConfigRuleInvokedTime"])),
        "annotation": result.get("Annotation"),
    }
    return {
        "version": "0",
        "id": str(uuid.uuid5(_CONFIG_EVENT_NAMESPACE, "|".join((account, region, evaluation_id(result), recorded)))),
        "detail-type": "Config Rules Compliance Change",
        "source": "aws.config",
        "account": account,
        "time": recorded,
        "region": region,
        "resources": [],
        "detail": {
            "resourceId": qualifier["ResourceId"],
            "awsRegion": region,
            "awsAccountId": account,
            "configRuleName": qualifier["ConfigRuleName"],
            "recordVersion": "1.0",
            "messageType": "ComplianceChangeNotification",
            "notificationCreationTime": recorded,
            "resourceType": qualifier["ResourceType"],
            "newEvaluationResult": evaluation,
        },
    }


def evaluation_id(result: dict[str, Any]) -> str:
    """What one Config evaluation is about: rule, resource type and resource id."""
    qualifier = result["EvaluationResultIdentifier"]["EvaluationResultQualifier"]
    return "/".join((qualifier["ConfigRuleName"], qualifier["ResourceType"], qualifier["ResourceId"]))


def _stamped(items: Iterable[dict[str, Any]], id_of: Callable[[dict], str], time_of: Callable[[dict], Any],
             where: str) -> list[Stamped]:
    """``(id, updated_at, item)`` per item; one the cursor cannot place is reported and left out."""
    stamped = []
    for item in items:
        try:
            stamped.append((id_of(item), parse_time(time_of(item)), item))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            report(f"{where}: skipped a record without a readable id and update time ({exc!r})")
    return stamped


def _publish_new(name: str, start: Cursor, now: datetime, batches: Iterable[list[Stamped]],
                 to_record: Callable[[dict[str, Any]], tuple[str, bytes]], store, sink) -> tuple[int, Cursor]:
    """Publish what ``start`` has not seen, confirm every delivery, then save the advanced cursor."""
    progress = Progress(start, now)
    published = 0
    for batch in batches:
        for item in progress.take(batch):
            sink.send(*to_record(item))
            published += 1
    sink.confirm()
    store.save(name, progress.cursor)
    return published, progress.cursor


def pull_securityhub(scope: Scope, args, store, sink) -> None:
    name = f"securityhub/{scope.account}/{scope.region}"
    now = datetime.now(UTC)
    start = store.get(name).not_after(now)
    filters = securityhub_filters(start, args, now)
    where = f"securityhub {scope.label}"

    def batches() -> Iterator[list[Stamped]]:
        fetched = 0
        pages = scope.pages("securityhub", "get_findings", Filters=filters,
                            PaginationConfig={"PageSize": args.page_size})
        for number, page in enumerate(pages, 1):
            findings = page.get("Findings", [])
            fetched += len(findings)
            report(f"{where}: {fetched} findings, {number} page{'' if number == 1 else 's'}")
            yield _stamped(findings, lambda f: f["Id"], lambda f: f["UpdatedAt"], where)

    published, cursor = _publish_new(name, start, now, batches(), lambda f: (f["Id"], orjson.dumps(f)), store,
                                     sink)
    report(f"{where}: published {published} new, cursor {cursor.describe()}")


def pull_config(scope: Scope, args, store, sink) -> None:
    name = f"awsconfig/{scope.account}/{scope.region}"
    now = datetime.now(UTC)
    start = store.get(name).not_after(now)
    # The first pull reports what is wrong now; later ones also what was fixed since.
    kinds = ["NON_COMPLIANT"] if start.updated_at is None else ["NON_COMPLIANT", "COMPLIANT"]
    where = f"config {scope.label}"

    def batches() -> Iterator[list[Stamped]]:
        rules = [rule["ConfigRuleName"] for rule in scope.items(
            "config", "describe_compliance_by_config_rule", "ComplianceByConfigRules", ComplianceTypes=kinds)]
        report(f"{where}: {len(rules)} rules with {' or '.join(kinds)} resources")
        for rule in rules:
            fetched = 0
            for page in scope.pages("config", "get_compliance_details_by_config_rule", ConfigRuleName=rule,
                                    ComplianceTypes=kinds):
                results = page.get("EvaluationResults", [])
                fetched += len(results)
                yield _stamped(results, evaluation_id, lambda r: r["ResultRecordedTime"], where)
            report(f"{where}: rule {rule}: {fetched} results")

    def to_record(result: dict[str, Any]) -> tuple[str, bytes]:
        return f"awsconfig/{scope.account}/{scope.region}/{evaluation_id(result)}", orjson.dumps(
            compliance_change_event(result, scope.account, scope.region))

    published, cursor = _publish_new(name, start, now, batches(), to_record, store, sink)
    report(f"{where}: published {published} new, cursor {cursor.describe()}")


PULLS = {"securityhub": pull_securityhub, "config": pull_config}


def pull_once(args, settings: Settings, store, sink) -> tuple[int, int]:
    """One pass over every account, region and source: how many of them were pulled, and how many failed.

    A part that fails (an account whose role cannot be assumed, AWS Config not enabled in a region, a
    denied API) is reported and left for the next pass; the others are pulled all the same.
    """
    try:
        targets = open_targets(args, settings)
    except AwsError as exc:
        report(f"hotpath: {exc}")
        return 0, 1
    failed = len(targets.unreachable)
    for line in targets.unreachable:
        report(f"hotpath: {line}")
    pulled = 0
    for account in targets.accounts:
        for region in targets.regions:
            scope = account.scope(region)
            for source in args.source or SOURCES:
                try:
                    PULLS[source](scope, args, store, sink)
                    pulled += 1
                except (AwsError, PublishError, StateError) as exc:
                    report(f"hotpath: {exc}")
                    failed += 1
    if failed and pulled:
        report(f"hotpath: {failed} of {pulled + failed} parts of the pass failed; "
               "they are tried again next pass")
    return pulled, failed


def run(args, settings: Settings) -> int:
    try:
        if args.out is not None:
            store = FileCursorStore(args.out.with_name(args.out.name + ".cursor.json"))
            sink = FileSink(args.out)
        else:
            store = TopicCursorStore(settings)
            sink = TopicSink(settings, settings.topic_findings)
    except (StateError, PublishError) as exc:
        report(f"hotpath: {exc}")
        return 1
    stop = threading.Event()
    if not args.once:
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while True:
            pulled, failed = pull_once(args, settings, store, sink)
            if args.once:
                return 1 if failed and not pulled else 0
            if stop.wait(args.interval):
                return 0
    finally:
        if isinstance(sink, FileSink):
            sink.close()
