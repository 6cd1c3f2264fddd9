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

What the finding fails and how to fix it: ``remediation`` (``desc``, ``references``) is the source's
advice. Detection Finding (OCSF 1.5) has no ``compliance`` attribute (Compliance Finding, class 2003,
has it), and one compliance object names one framework's controls, so ``unmapped.compliance`` holds
one OCSF ``compliance`` object per framework (``standards``, ``requirements``, ``control`` the check,
``status_id`` 3 Fail while the escalation is open), as Prowler's own Detection Findings keep theirs in
``unmapped.compliance``.

A SIEM pivots on ``observables``: the resources (type 10 Resource UID), the calling services on the
exposure path and the asset's service, the sample traces and the runtime alerts (type 99 Other, named
by ``type``). ``evidences`` lists the traces that exercised the finding, each with its link in the
trace UI (``HOTPATH_TRACE_URL_TEMPLATE``, :func:`stream.deliver.escalation.trace_url`), and the alerts.

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
from py_ocsf_models.objects.compliance import Compliance
from py_ocsf_models.objects.compliance_status import StatusID as ComplianceStatusID
from py_ocsf_models.objects.evidence_artifacts import EvidenceArtifacts
from py_ocsf_models.objects.finding_info import FindingInformation
from py_ocsf_models.objects.metadata import Metadata
from py_ocsf_models.objects.observable import Observable
from py_ocsf_models.objects.observable import TypeID as ObservableTypeID
from py_ocsf_models.objects.product import Product
from py_ocsf_models.objects.related_event import RelatedEvent
from py_ocsf_models.objects.remediation import Remediation
from py_ocsf_models.objects.resource_details import ResourceDetails
from py_ocsf_models.objects.url import URL

from stream.deliver.escalation import (
    TEXT_MAX_CHARS,
    Escalation,
    epoch_ms,
    escalation_from_dict,
    suppression_note,
    trace_url,
)
from stream.redact import truncate
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
# What a policy decided, kept in unmapped.hotpath when the event carries it.
POLICY_FIELDS = frozenset({"suppressed_by", "suppression_ended", "policy_version"})
TRACE_EVENT_TYPE = "OpenTelemetry trace"
ALERT_EVENT_TYPE = "Runtime alert"
SERVICE_PREFIX = "service:"  # the entity id of a calling service
# Where in the record each kind of observable value sits (OCSF's observable ``name``), and its type name.
RESOURCE_OBSERVABLE = "resources.uid"
PATH_SERVICE_OBSERVABLE = "unmapped.hotpath.factors.exposure_path"
ASSET_SERVICE_OBSERVABLE = "unmapped.hotpath.asset.service"
RELATED_EVENT_OBSERVABLE = "finding_info.related_events.uid"
RESOURCE_TYPE, SERVICE_TYPE, TRACE_TYPE, ALERT_TYPE = "Resource UID", "Service", "Trace ID", "Alert UID"
REMEDIATION_WITHOUT_DESCRIPTION = "See the references."

_ARN = re.compile(
    r"^arn:(?P<partition>[^:]+):(?P<service>[^:]*):(?P<region>[^:]*):(?P<account>[^:]*):(?P<resource>.+)$")
# ARNs whose resource part is a bare name, without a "type/" or "type:" prefix.
_UNTYPED_ARN_RESOURCES = {"s3": "bucket", "sqs": "queue", "sns": "topic"}
_AWS_ACCOUNT = re.compile(r"^\d{12}$")


def to_ocsf(event: dict[str, Any] | Escalation, product_version: str = PRODUCT_VERSION,
            trace_url_template: str | None = None) -> dict[str, Any]:
    """One escalation event as an OCSF Detection Finding, ready for JSON (``None`` fields left out).

    With ``trace_url_template`` each trace evidence links to the trace UI.
    """
    escalation = event if isinstance(event, Escalation) else escalation_from_dict(event)
    finding = escalation.finding
    activity = _activity(escalation)
    severity = SEVERITY_BY_PRIORITY[escalation.priority]
    risk_level = RISK_LEVEL_BY_PRIORITY[escalation.priority]
    status = STATUS_BY_STATE[escalation.state]
    type_uid = DetectionFindingTypeID(ClassUID.DetectionFinding * 100 + activity.value)
    resources = _resources(escalation)
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
        resources=resources,
        cloud=_cloud(escalation),
        remediation=_remediation(escalation),
        observables=_observables(escalation, resources),
        evidences=_evidences(escalation, trace_url_template) or None,
        metadata=Metadata(
            product=Product(name=PRODUCT_NAME, uid=PRODUCT_NAME, vendor_name=PRODUCT_NAME, version=product_version),
            version=OCSF_SCHEMA_VERSION,
            uid=f"{escalation.escalation_uid}:{escalation.version}",
            correlation_uid=escalation.escalation_uid,
            event_code=finding.check,
            profiles=["cloud"],
        ),
        unmapped={"hotpath": _hotpath_details(escalation), **_compliance(escalation)},
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


def _remediation(escalation: Escalation) -> Remediation | None:
    advice = escalation.finding.remediation
    if advice is None:
        return None
    return Remediation(desc=advice.description or REMEDIATION_WITHOUT_DESCRIPTION, references=advice.references or None)


def _compliance(escalation: Escalation) -> dict[str, list[dict[str, Any]]]:
    """``{"compliance": [one OCSF compliance object per framework]}``, or nothing when the finding names none."""
    failing = ComplianceStatusID.Fail if escalation.state != "resolved" else None
    objects = [
        Compliance(standards=[framework], requirements=controls, control=escalation.finding.check, status_id=failing)
        for framework, controls in escalation.finding.compliance.items()]
    return {"compliance": [item.model_dump(mode="json", exclude_none=True) for item in objects]} if objects else {}


def _other_observables(name: str, kind: str, values: list[str]) -> list[Observable]:
    """Observables of a kind OCSF has no type id for (type 99 Other, ``type`` naming it)."""
    return [Observable(name=name, type=kind, type_id=ObservableTypeID.Other, value=value) for value in values]


def _observables(escalation: Escalation, resources: list[ResourceDetails]) -> list[Observable]:
    """What a SIEM pivots on: resources, services, traces and alerts, each once, pointing at where it sits."""
    path_services = [entity for entity in escalation.factors.exposure_path if entity.startswith(SERVICE_PREFIX)]
    evidence = escalation.evidence
    return [
        *(Observable(name=RESOURCE_OBSERVABLE, type=RESOURCE_TYPE, type_id=ObservableTypeID.Resource_UID,
                     value=resource.uid) for resource in resources),
        *_other_observables(PATH_SERVICE_OBSERVABLE, SERVICE_TYPE, list(dict.fromkeys(path_services))),
        *_other_observables(ASSET_SERVICE_OBSERVABLE, SERVICE_TYPE,
                            [escalation.asset.service] if escalation.asset.service else []),
        *_other_observables(RELATED_EVENT_OBSERVABLE, TRACE_TYPE, evidence.trace_ids),
        *_other_observables(RELATED_EVENT_OBSERVABLE, ALERT_TYPE, evidence.alert_uids),
    ]


def _evidences(escalation: Escalation, trace_url_template: str | None) -> list[EvidenceArtifacts]:
    """The traces that exercised the finding (linked to the trace UI when a template is set), then the alerts."""
    evidence = escalation.evidence
    traces = [EvidenceArtifacts(
        name=f"{TRACE_EVENT_TYPE} {trace_id}", data={"trace_id": trace_id},
        url=URL(url_string=trace_url(trace_url_template, trace_id)) if trace_url_template else None)
        for trace_id in evidence.trace_ids]
    alerts = [EvidenceArtifacts(name=truncate(f"{ALERT_EVENT_TYPE} {alert_uid}", TEXT_MAX_CHARS),
                                data={"alert_uid": alert_uid})
              for alert_uid in evidence.alert_uids]
    return traces + alerts


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
        **{name: value for name, value in escalation.model_dump(include=POLICY_FIELDS).items() if value is not None},
    }
