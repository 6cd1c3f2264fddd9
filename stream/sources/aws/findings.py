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

import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from stream.models import rfc3339
from stream.settings import Settings
from stream.sources.aws import MAX_PAGE_SIZE, SOURCES
from stream.sources.aws.cursor import (
    Cursor,
    FileCursorStore,
    Progress,
    StateError,
    TopicCursorStore,
    parse_time,
)
from stream.sources.aws.publish import FileSink, PublishError, TopicSink
from stream.sources.aws.session import AccountOptions, AwsError, Scope, open_targets, report

# A stable namespace for the ids of Config events this pull synthesizes, so a re-publish has the same id.
_CONFIG_EVENT_NAMESPACE = uuid.UUID("5d0f8c1e-7a0b-4c55-9a51-6f1f0d8e2a47")

Stamped = tuple[str, datetime, dict[str, Any]]
CursorStore = FileCursorStore | TopicCursorStore
Sink = FileSink | TopicSink


@dataclass(frozen=True)
class PullOptions:
    """What one pull reads: accounts and regions, sources, and the Security Hub filters (empty: all)."""

    accounts: AccountOptions = field(default_factory=AccountOptions)
    sources: tuple[str, ...] = SOURCES
    record_states: tuple[str, ...] = ()
    workflow_statuses: tuple[str, ...] = ()
    product_names: tuple[str, ...] = ()
    page_size: int = MAX_PAGE_SIZE


def securityhub_filters(start: Cursor, options: PullOptions, now: datetime) -> dict[str, Any]:
    """``AwsSecurityFindingFilters`` for one pass: the user's filters and ``UpdatedAt`` from the cursor.

    ``Start`` is the cursor rounded down to the second (the cursor drops what it already published),
    ``End`` a day ahead of now, so a slightly fast provider clock is not cut off.
    """
    filters: dict[str, Any] = {}
    for name, values in (("RecordState", options.record_states), ("WorkflowStatus", options.workflow_statuses),
                         ("ProductName", options.product_names)):
        if values:
            filters[name] = [{"Value": value, "Comparison": "EQUALS"} for value in dict.fromkeys(values)]
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


def pull_securityhub(scope: Scope, options: PullOptions, store, sink) -> None:
    name = f"securityhub/{scope.account}/{scope.region}"
    now = datetime.now(UTC)
    start = store.get(name).not_after(now)
    filters = securityhub_filters(start, options, now)
    where = f"securityhub {scope.label}"

    def batches() -> Iterator[list[Stamped]]:
        fetched = 0
        pages = scope.pages("securityhub", "get_findings", Filters=filters,
                            PaginationConfig={"PageSize": options.page_size})
        for number, page in enumerate(pages, 1):
            findings = page.get("Findings", [])
            fetched += len(findings)
            report(f"{where}: {fetched} findings, {number} page{'' if number == 1 else 's'}")
            yield _stamped(findings, lambda f: f["Id"], lambda f: f["UpdatedAt"], where)

    published, cursor = _publish_new(name, start, now, batches(), lambda f: (f["Id"], orjson.dumps(f)), store,
                                     sink)
    report(f"{where}: published {published} new, cursor {cursor.describe()}")


def pull_config(scope: Scope, options: PullOptions, store, sink) -> None:
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


def pull_once(options: PullOptions, settings: Settings, store, sink) -> tuple[int, int]:
    """One pass over every account, region and source: how many of them were pulled, and how many failed.

    A part that fails (an account whose role cannot be assumed, AWS Config not enabled in a region, a
    denied API) is reported and left for the next pass; the others are pulled all the same.
    """
    try:
        targets = open_targets(options.accounts, settings)
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
            for source in options.sources:
                try:
                    PULLS[source](scope, options, store, sink)
                    pulled += 1
                except (AwsError, PublishError, StateError) as exc:
                    report(f"hotpath: {exc}")
                    failed += 1
    if failed and pulled:
        report(f"hotpath: {failed} of {pulled + failed} parts of the pass failed; "
               "they are tried again next pass")
    return pulled, failed


def open_destination(settings: Settings, out: Path | None) -> tuple[CursorStore, Sink]:
    """Where the pull keeps its cursors and sends findings: beside ``out`` and into it, else the findings topic."""
    if out is not None:
        return FileCursorStore(out.with_name(out.name + ".cursor.json")), FileSink(out)
    return TopicCursorStore(settings), TopicSink(settings, settings.topic_findings)
