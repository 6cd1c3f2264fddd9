"""AWS Config "Config Rules Compliance Change" events: one rule's verdict on one resource changed.

Accepted as the EventBridge event (``detail-type`` "Config Rules Compliance Change") or as its bare
``detail`` (the SNS notification body, ``messageType`` "ComplianceChangeNotification").

* ``newEvaluationResult.complianceType`` NON_COMPLIANT opens the finding; COMPLIANT resolves it, and
  so does NOT_APPLICABLE (the rule no longer applies, e.g. the resource is gone). INSUFFICIENT_DATA
  is no verdict at all: it yields no finding, so whatever state the finding had stays.
* AWS Config rules carry no severity: every Config finding is ``medium``. The rule is the control
  the finding fails, of the framework ``AWS Config``; the event carries no remediation.
* The finding uid is stable across verdicts (``awsconfig/ACCOUNT/REGION/RULE/TYPE/RESOURCE``), so a
  later COMPLIANT event resolves the finding an earlier NON_COMPLIANT event opened.

Resources are named by CloudFormation type and id (``AWS::S3::Bucket`` + bucket name); the same
naming is used by Security Hub's OCSF findings, so :func:`aws_resource_entity` serves both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stream.entities.resolve import (
    aws_arn,
    dynamodb_table_arn,
    ec2_instance_arn,
    s3_bucket_arn,
    sqs_queue_arn,
)
from stream.ingest.formats.compliance import compliance_map
from stream.jsonsafe import expect_dict, text
from stream.models import DecodeError

DETAIL_TYPE = "Config Rules Compliance Change"
FRAMEWORK = "AWS Config"  # the framework a Config rule is the control of
SEVERITY = "medium"
_OPEN = {"NON_COMPLIANT"}
_RESOLVED = {"COMPLIANT", "NOT_APPLICABLE"}
_NO_VERDICT = "INSUFFICIENT_DATA"

ArnBuilder = Callable[[str, str | None, str | None], str]


def _in_service(service: str, prefix: str) -> ArnBuilder:
    return lambda rid, region, account: aws_arn(service, region, account, prefix + rid)


def _sqs_queue(rid: str, region: str | None, account: str | None) -> str:
    return sqs_queue_arn(rid) or aws_arn("sqs", region, account, rid)


# CloudFormation resource type -> ARN from the id AWS Config and Security Hub give for it. Types whose
# id is not the name in the ARN (IAM unique ids, RDS DbiResourceId) are left out on purpose.
_ARN_BUILDERS: dict[str, ArnBuilder] = {
    "AWS::S3::Bucket": lambda rid, _region, _account: s3_bucket_arn(rid),
    "AWS::EC2::Instance": ec2_instance_arn,
    "AWS::EC2::SecurityGroup": _in_service("ec2", "security-group/"),
    "AWS::EC2::Volume": _in_service("ec2", "volume/"),
    "AWS::EC2::VPC": _in_service("ec2", "vpc/"),
    "AWS::Lambda::Function": _in_service("lambda", "function:"),
    "AWS::DynamoDB::Table": dynamodb_table_arn,
    "AWS::SQS::Queue": _sqs_queue,
    "AWS::EKS::Cluster": _in_service("eks", "cluster/"),
    "AWS::KMS::Key": _in_service("kms", "key/"),
    "AWS::::Account": lambda rid, _region, _account: f"arn:aws:iam::{rid}:root",
}


def aws_resource_entity(resource_type: str | None, resource_id: str, region: str | None, account: str | None) -> str:
    """The entity of a resource named by CloudFormation type and id.

    An ARN is kept; a known type becomes its ARN (an account becomes ``arn:aws:iam::ACCOUNT:root``,
    as Prowler names it); anything else stays readable as ``TYPE/ID``.
    """
    if resource_id.startswith("arn:"):
        return resource_id
    builder = _ARN_BUILDERS.get(resource_type or "")
    if builder is not None:
        return builder(resource_id, region, account)
    return f"{resource_type}/{resource_id}" if resource_type else resource_id


def is_compliance_detail(document: dict[str, Any]) -> bool:
    """True for the bare ``detail`` of a compliance change (as SNS notifications carry it)."""
    return "configRuleName" in document and "newEvaluationResult" in document


def config_finding(detail: dict[str, Any], event_time: Any = None) -> list[dict[str, Any]]:
    """The finding fields of one compliance change (none for INSUFFICIENT_DATA)."""
    what = "AWS Config event detail"
    result = expect_dict(detail.get("newEvaluationResult"), f"{what} newEvaluationResult")
    compliance = text(result, "complianceType", f"{what} newEvaluationResult")
    if compliance == _NO_VERDICT:
        return []
    if compliance not in _OPEN | _RESOLVED:
        raise DecodeError(f"{what}: unknown complianceType {compliance[:40]!r}")
    rule = text(detail, "configRuleName", what)
    resource_type = text(detail, "resourceType", what)
    resource_id = text(detail, "resourceId", what)
    region = text(detail, "awsRegion", what, required=False)
    account = text(detail, "awsAccountId", what, required=False)
    observed_at = result.get("resultRecordedTime") or detail.get("notificationCreationTime") or event_time
    if observed_at is None:
        raise DecodeError(f"{what}: no time (newEvaluationResult.resultRecordedTime)")
    return [{
        "uid": f"awsconfig/{account}/{region}/{rule}/{resource_type}/{resource_id}",
        "source": "awsconfig",
        "check": rule,
        "title": f"AWS Config rule {rule}",
        "severity": SEVERITY,
        "status": "open" if compliance in _OPEN else "resolved",
        "resources": [aws_resource_entity(resource_type, resource_id, region, account)],
        "account": account,
        "region": region,
        "observed_at": observed_at,
        "compliance": compliance_map([(FRAMEWORK, rule)]),
    }]
