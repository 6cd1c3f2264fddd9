"""Escalation events as OCSF Detection Findings (class 2004) for the SIEM feed ``hotpath.siem.ocsf``.

Built with py-ocsf-models (the library Prowler uses), so the field names and enums are the schema's,
not ours. One object per lifecycle event: ``activity_id`` 1 Create (escalated), 2 Update (updated),
3 Close (resolved); ``finding_info.uid`` is the escalation uid, the same for the whole lifecycle, so
a SIEM folds the three into one finding. ``metadata.uid`` (escalation uid and version) is unique
per object, so a SIEM can drop the duplicates at-least-once delivery may produce.

Priority mapping (hotpath priority -> OCSF):

=========  ======================  =======================  =====================
priority   severity_id / severity  risk_level_id / level    PagerDuty severity
=========  ======================  =======================  =====================
P1         5 Critical              4 Critical               critical
P2         4 High                  3 High                   error
P3         3 Medium                2 Medium                 warning
P4         2 Low                   1 Low                    info
P5         1 Informational         0 Info                   info
=========  ======================  =======================  =====================

``risk_score`` is the hotpath score (0..100) rounded; ``status_id`` is 1 New while the escalation is
open, 3 Suppressed while a policy mutes it and 4 Resolved once it is resolved. A suppressed event is
a Create when it is the finding's first event (muted from the start), else an Update; the SIEM keeps
the decision: ``comment`` says which rule, who accepted the risk, why and until when, and
``unmapped.hotpath.suppressed_by`` holds the rule as the event carries it (``suppression_ended``
on the first event after it ends, and ``policy_version`` whenever a policy judged). A priority
change is an Update with the new severity, and ``unmapped.hotpath.previous_priority`` says what it
was. Scores, factors and the asset context travel in ``unmapped.hotpath``. Times are OCSF
``timestamp_t``: milliseconds since the epoch.

Every text comes from the masked, bounded escalation (:mod:`stream.deliver.escalation`: at most 1024
characters each, lists of at most 20), so the record stays within the schema's limits
(topics/schemas/ocsf-detection-finding.schema.json) and the SIEM topic's message size.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from py_ocsf_models.events.findings.activity_id import ActivityID
from py_ocsf_models.events.findings.class_uid import ClassUID
from py_ocsf_models.events.findings.detection_finding import DetectionFinding
from py_ocsf_models.events.findings.detection_finding_type_id import DetectionFindingTypeID
from py_ocsf_models.events.findings.risk_level_id import RiskLevelID
from py_ocsf_models.events.findings.severity_id import SeverityID
from py_ocsf_models.events.findings.status_id import StatusID
from py_ocsf_models.objects.account import Account, TypeID
from py_ocsf_models.objects.cloud import Cloud
from py_ocsf_models.objects.finding_info import FindingInformation
from py_ocsf_models.objects.metadata import Metadata
from py_ocsf_models.objects.product import Product
from py_ocsf_models.objects.related_event import RelatedEvent
from py_ocsf_models.objects.resource_details import ResourceDetails

from stream.deliver.escalation import TEXT_MAX_CHARS, Escalation, epoch_ms, escalation_from_dict, suppression_note
from stream.deliver.http import truncate
from stream.version import version

OCSF_SCHEMA_VERSION = "1.5.0"
PRODUCT_NAME = "hotpath"
PRODUCT_VERSION = version()
# Kafka's default message.max.bytes (the SIEM topic keeps the broker's default): a larger record
# would stop the delivery; it is refused with a reason instead, and dead-lettered.
RECORD_MAX_BYTES = 1_000_000
MESSAGE_MAX_CHARS = 2048
DESC_MAX_CHARS = 16384
COMMENT_MAX_CHARS = 8192

SEVERITY_BY_PRIORITY: dict[str, SeverityID] = {
    "P1": SeverityID.Critical,
    "P2": SeverityID.High,
    "P3": SeverityID.Medium,
    "P4": SeverityID.Low,
    "P5": SeverityID.Informational,
}
RISK_LEVEL_BY_PRIORITY: dict[str, RiskLevelID] = {
    "P1": RiskLevelID.Critical,
    "P2": RiskLevelID.High,
    "P3": RiskLevelID.Medium,
    "P4": RiskLevelID.Low,
    "P5": RiskLevelID.Info,
}
ACTIVITY_BY_STATE: dict[str, ActivityID] = {
    "escalated": ActivityID.Create,
    "updated": ActivityID.Update,
    "resolved": ActivityID.Close,
}
STATUS_BY_STATE: dict[str, StatusID] = {
    "escalated": StatusID.New,
    "updated": StatusID.New,
    "resolved": StatusID.Resolved,
    "suppressed": StatusID.Suppressed,
}
TRACE_EVENT_TYPE = "OpenTelemetry trace"
ALERT_EVENT_TYPE = "Runtime alert"

_ARN = re.compile(
    r"^arn:(?P<partition>[^:]+):(?P<service>[^:]*):(?P<region>[^:]*):(?P<account>[^:]*):(?P<resource>.+)$")
# ARNs whose resource part is a bare name, without a "type/" or "type:" prefix.
_UNTYPED_ARN_RESOURCES = {"s3": "bucket", "sqs": "queue", "sns": "topic"}
_AWS_ACCOUNT = re.compile(r"^\d{12}$")


def to_ocsf(event: dict[str, Any] | Escalation, product_version: str = PRODUCT_VERSION) -> dict[str, Any]:
    """One escalation event as an OCSF Detection Finding, ready for JSON (``None`` fields left out)."""
    escalation = event if isinstance(event, Escalation) else escalation_from_dict(event)
    finding = escalation.finding
    activity = _activity(escalation)
    severity = SEVERITY_BY_PRIORITY[escalation.priority]
    risk_level = RISK_LEVEL_BY_PRIORITY[escalation.priority]
    status = STATUS_BY_STATE[escalation.state]
    type_uid = DetectionFindingTypeID(ClassUID.DetectionFinding * 100 + activity.value)
    ocsf = DetectionFinding(
        activity_id=activity,
        activity_name=activity.name,
        type_uid=type_uid,
        type_name=f"Detection Finding: {activity.name}",
        time=escalation.event_epoch_ms,
        severity_id=severity,
        severity=severity.name,
        status_id=status,
        status=status.name,
        risk_score=round(escalation.score),
        risk_level_id=risk_level,
        risk_level=risk_level.name,
        message=truncate(f"{escalation.priority} {finding.title} on {escalation.resource}", MESSAGE_MAX_CHARS),
        comment=truncate(suppression_note(escalation), COMMENT_MAX_CHARS) if escalation.state == "suppressed" else None,
        finding_info=_finding_info(escalation),
        resources=_resources(escalation),
        cloud=_cloud(escalation),
        metadata=Metadata(
            product=Product(name=PRODUCT_NAME, uid=PRODUCT_NAME, vendor_name=PRODUCT_NAME, version=product_version),
            version=OCSF_SCHEMA_VERSION,
            uid=f"{escalation.escalation_uid}:{escalation.version}",
            correlation_uid=escalation.escalation_uid,
            event_code=finding.check,
            profiles=["cloud"],
        ),
        unmapped={"hotpath": _hotpath_details(escalation)},
    )
    record = ocsf.model_dump(mode="json", exclude_none=True)
    size = len(orjson.dumps(record))
    if size > RECORD_MAX_BYTES:
        raise ValueError(f"the OCSF finding takes {size} bytes, more than the {RECORD_MAX_BYTES} the SIEM topic takes")
    return record


def _activity(escalation: Escalation) -> ActivityID:
    """Create, Update or Close; a suppressed event creates the finding when the policy muted it from its first event."""
    if escalation.state == "suppressed":
        return ActivityID.Create if escalation.version == 1 else ActivityID.Update
    return ACTIVITY_BY_STATE[escalation.state]


def _finding_info(escalation: Escalation) -> FindingInformation:
    evidence = escalation.evidence
    related = [RelatedEvent(uid=trace_id, type=TRACE_EVENT_TYPE) for trace_id in evidence.trace_ids]
    related += [RelatedEvent(uid=alert_uid, type=ALERT_EVENT_TYPE) for alert_uid in evidence.alert_uids]
    sources = [escalation.finding.source]
    if evidence.trace_ids:
        sources.append("opentelemetry")
    if evidence.alert_uids:
        sources.append("runtime-alerts")
    return FindingInformation(
        uid=escalation.escalation_uid,
        title=escalation.finding.title,
        desc=truncate("\n".join(escalation.reasons), DESC_MAX_CHARS),
        related_events=related or None,
        data_sources=sources,
        first_seen_time=epoch_ms(evidence.first_seen) if evidence.first_seen else None,
        last_seen_time=epoch_ms(evidence.last_seen) if evidence.last_seen else None,
    )


def _resources(escalation: Escalation) -> list[ResourceDetails]:
    """The escalated resource first (with its asset context as labels), then the finding's others."""
    entities = [escalation.resource] + [r for r in escalation.finding.resources if r != escalation.resource]
    asset = escalation.asset
    labels = [truncate(f"{name}:{value}", TEXT_MAX_CHARS) for name, value in
              (("owner", asset.owner), ("environment", asset.environment), ("service", asset.service)) if value]
    resources = []
    for index, entity in enumerate(entities):
        arn = _ARN.match(entity)
        primary = index == 0
        resources.append(ResourceDetails(
            uid=entity,
            name=_resource_name(entity, arn),
            type=_resource_type(entity, arn),
            region=(arn and arn["region"]) or escalation.finding.region,
            cloud_partition=arn["partition"] if arn else None,
            criticality=escalation.factors.criticality if primary else None,
            labels=labels if primary and labels else None,
        ))
    return resources


def _resource_type(entity: str, arn: re.Match | None) -> str:
    """``aws:<service>:<type>`` from an ARN, else the entity id's own prefix (``service``, ``k8s:pod``)."""
    if arn:
        service = arn["service"]
        kind = _UNTYPED_ARN_RESOURCES.get(service) or re.split(r"[/:]", arn["resource"], maxsplit=1)[0]
        return f"aws:{service}:{kind}"
    if entity.startswith("k8s:"):
        return entity.split("/", 1)[0]
    return entity.split(":", 1)[0] if ":" in entity else "other"


def _resource_name(entity: str, arn: re.Match | None) -> str:
    tail = arn["resource"] if arn else entity.split(":", 1)[-1]
    return re.split(r"[/:]", tail)[-1] or tail


def _cloud(escalation: Escalation) -> Cloud:
    finding = escalation.finding
    account = finding.account
    arns = [m for m in (_ARN.match(entity) for entity in [escalation.resource, *finding.resources]) if m]
    if arns or (account and _AWS_ACCOUNT.match(account)):
        provider = "aws"
    elif escalation.resource.startswith("k8s:"):
        provider = "kubernetes"
    else:
        provider = "unknown"
    account = account or next((m["account"] for m in arns if m["account"]), None)
    return Cloud(
        provider=provider,
        region=finding.region or next((m["region"] for m in arns if m["region"]), None),
        account=Account(uid=account, name=account, type_id=TypeID.AWS_Account, type="AWS Account")
        if account and provider == "aws" else None,
    )


def _hotpath_details(escalation: Escalation) -> dict[str, Any]:
    finding = escalation.finding
    return {
        "finding_uid": escalation.finding_uid,
        "state": escalation.state,
        "version": escalation.version,
        "priority": escalation.priority,
        "previous_priority": escalation.previous_priority,
        "score": escalation.score,
        "factors": escalation.factors.model_dump(),
        "asset": escalation.asset.model_dump(),
        "finding": {"source": finding.source, "check": finding.check, "severity": finding.severity},
        "emitted_at": escalation.emitted_at,
        **escalation.model_dump(include={"suppressed_by", "suppression_ended", "policy_version"}, exclude_none=True),
    }
