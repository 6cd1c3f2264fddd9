"""AWS Security Hub findings: ASFF (Security Hub CSPM) and the OCSF findings of the newer Security Hub.

**ASFF** arrives as a bare finding, a ``{"Findings": [...]}`` batch (GetFindings output,
BatchImportFindings input) or the EventBridge event "Security Hub Findings - Imported"
(``detail.findings[]``); the caller unwraps the batch and the event.

* A finding is *resolved* when ``Compliance.Status`` is PASSED, ``RecordState`` is ARCHIVED, or
  ``Workflow.Status`` (``WorkflowState`` in old findings) is RESOLVED or SUPPRESSED; else it is open.
  WARNING and NOT_AVAILABLE leave it open (Security Hub archives NOT_AVAILABLE ones itself).
* Severity is ``Severity.Label`` (or ``FindingProviderFields.Severity.Label``), else the
  ``Severity.Normalized`` bands of the ASFF documentation (90+ critical, 70+ high, 40+ medium,
  1+ low, 0 informational).
* The check is the control: ``Compliance.SecurityControlId``, ``ProductFields.ControlId`` or
  ``ProductFields.RuleId``, else ``GeneratorId``. The time is ``UpdatedAt`` (when this version of
  the finding was written), else ``LastObservedAt`` or ``CreatedAt``.
* ``Resources[].Id`` is kept when it is an ARN; an ``AwsAccount`` (``AWS::::Account:ID``) becomes
  ``arn:aws:iam::ID:root`` (Prowler's name for the account); other ids go through
  :func:`stream.ingest.formats.awsconfig.aws_resource_entity`.

* The controls it fails (:mod:`stream.ingest.formats.compliance`): ``Compliance.SecurityControlId``
  under each of ``Compliance.AssociatedStandards`` (named as a SOC reads them, ``PCI DSS v3.2.1``),
  and ``Compliance.RelatedRequirements`` (``"NIST.800-53.r5 AC-21"``, ``"PCI DSS v4.0.1/1.3.1"``);
  older findings name the standard in ``ProductFields`` instead. The fix is
  ``Remediation.Recommendation`` (``Text``, ``Url``).

**OCSF** findings ("Findings Imported V2" events, ``detail.findings[]``) are read like Prowler's
(:func:`stream.ingest.formats.prowler.ocsf_finding_fields`). Resolved when ``status_id`` is Suppressed,
Resolved, Archived or Deleted, or when ``compliance.status_id`` is 1 (Pass). The check is
``compliance.control`` (e.g. ``S3.1``), else the most specific ``finding_info.types`` entry (a threat
type such as ``Stealth:IAMUser/CloudTrailLoggingDisabled``), else the analytic's name. Resources
name themselves by CloudFormation type (``AWS::S3::Bucket`` + name; ``uid_alt`` often holds the ARN).
The controls are ``compliance.control`` under each of ``compliance.standards``, and
``compliance.requirements`` read like ASFF's related requirements; the fix is ``remediation``.
"""

from __future__ import annotations

from typing import Any

from stream.ingest.formats.awsconfig import aws_resource_entity
from stream.ingest.formats.compliance import compliance_map, remediation, requirement, standard_name, strings
from stream.ingest.formats.prowler import integer, ocsf_closed, ocsf_finding_fields, section
from stream.jsonsafe import expect_dict, expect_list, text
from stream.models import SEVERITIES, DecodeError

ASFF_EVENT = "Security Hub Findings - Imported"
SECURITY_HUB_FRAMEWORK = "AWS Security Hub"  # a control no standard is named for
OCSF_EVENT = "Findings Imported V2"
_ACCOUNT_ID_PREFIX = "AWS::::Account:"
_OCSF_PASS = 1  # compliance.status_id
_ASFF_RESOLVED_WORKFLOW = {"RESOLVED", "SUPPRESSED"}
_NORMALIZED_BANDS = ((90, "critical"), (70, "high"), (40, "medium"), (1, "low"), (0, "informational"))
# ASFF resource types whose Id may be a bare id, and their CloudFormation names.
_ASFF_TYPES = {
    "AwsAccount": "AWS::::Account",
    "AwsS3Bucket": "AWS::S3::Bucket",
    "AwsEc2Instance": "AWS::EC2::Instance",
    "AwsEc2SecurityGroup": "AWS::EC2::SecurityGroup",
    "AwsEc2Volume": "AWS::EC2::Volume",
    "AwsEc2Vpc": "AWS::EC2::VPC",
    "AwsLambdaFunction": "AWS::Lambda::Function",
    "AwsDynamoDbTable": "AWS::DynamoDB::Table",
    "AwsSqsQueue": "AWS::SQS::Queue",
    "AwsEksCluster": "AWS::EKS::Cluster",
    "AwsKmsKey": "AWS::KMS::Key",
}


def is_asff(document: dict[str, Any]) -> bool:
    return "ProductArn" in document and "Resources" in document


def _asff_severity(finding: dict[str, Any], what: str) -> str:
    severity = section(finding, "Severity", what)
    provider = section(section(finding, "FindingProviderFields", what), "Severity", f"{what} FindingProviderFields")
    label = text(severity, "Label", f"{what} Severity", required=False) or text(
        provider, "Label", f"{what} FindingProviderFields.Severity", required=False)
    if label is not None:
        if label.lower() not in SEVERITIES:
            raise DecodeError(f"{what}: unknown Severity.Label {label[:40]!r}")
        return label.lower()
    normalized = severity.get("Normalized")
    if isinstance(normalized, int | float) and not isinstance(normalized, bool) and 0 <= normalized <= 100:
        return next(name for floor, name in _NORMALIZED_BANDS if normalized >= floor)
    raise DecodeError(f"{what}: no severity (Severity.Label, or Severity.Normalized 0-100)")


def _asff_resolved(finding: dict[str, Any], what: str) -> bool:
    compliance = text(section(finding, "Compliance", what), "Status", f"{what} Compliance", required=False)
    record_state = text(finding, "RecordState", what, required=False)
    workflow = text(section(finding, "Workflow", what), "Status", f"{what} Workflow", required=False)
    workflow = workflow or text(finding, "WorkflowState", what, required=False)
    return compliance == "PASSED" or record_state == "ARCHIVED" or workflow in _ASFF_RESOLVED_WORKFLOW


def _asff_check(finding: dict[str, Any], what: str) -> str:
    compliance = section(finding, "Compliance", what)
    product_fields = section(finding, "ProductFields", what)
    return (
        text(compliance, "SecurityControlId", f"{what} Compliance", required=False)
        or text(product_fields, "ControlId", f"{what} ProductFields", required=False)
        or text(product_fields, "RuleId", f"{what} ProductFields", required=False)
        or text(finding, "GeneratorId", what)
    )


def _asff_resource_entity(resource: Any, region: str | None, account: str | None, what: str) -> str:
    resource = expect_dict(resource, what)
    resource_id = text(resource, "Id", what)
    resource_type = text(resource, "Type", what, required=False)
    if resource_type == "AwsAccount":
        resource_id = resource_id.removeprefix(_ACCOUNT_ID_PREFIX)
    cfn_type = _ASFF_TYPES.get(resource_type or "", resource_type)
    resource_region = text(resource, "Region", what, required=False)
    return aws_resource_entity(cfn_type, resource_id, resource_region or region, account)


def _controls(control: str | None, standards: list[str], requirements: list[str]) -> dict[str, list[str]]:
    """The control under each standard (``AWS Security Hub`` when none is named), then the related requirements."""
    named_standards = standards or [SECURITY_HUB_FRAMEWORK]
    pairs = [(standard_name(standard), control) for standard in named_standards] if control else []
    return compliance_map(pairs + [requirement(named) for named in requirements])


def _asff_compliance(finding: dict[str, Any], what: str) -> dict[str, list[str]]:
    """``Compliance`` (control, standards, related requirements), else the control fields of ``ProductFields``.

    Findings written before consolidated controls name the standard in ``ProductFields``:
    ``StandardsArn`` with ``ControlId``, or (CIS 1.2.0) ``StandardsGuideArn`` with ``RuleId``.
    """
    compliance = section(finding, "Compliance", what)
    product_fields = section(finding, "ProductFields", what)
    where = f"{what} Compliance"
    standards = [text(expect_dict(item, f"{where} AssociatedStandards[]"), "StandardsId", where)
                 for item in expect_list(compliance.get("AssociatedStandards") or [], f"{where} AssociatedStandards")]
    control = text(compliance, "SecurityControlId", where, required=False)
    if control is None:
        for standard_key, control_key in (("StandardsArn", "ControlId"), ("StandardsGuideArn", "RuleId")):
            control = text(product_fields, control_key, f"{what} ProductFields", required=False)
            standard = text(product_fields, standard_key, f"{what} ProductFields", required=False)
            if control and standard:
                standards = [standard]
                break
    return _controls(control, standards, strings(compliance, "RelatedRequirements", where))


def _asff_remediation(finding: dict[str, Any], what: str) -> dict[str, Any] | None:
    advice = section(section(finding, "Remediation", what), "Recommendation", f"{what} Remediation")
    where = f"{what} Remediation.Recommendation"
    url = text(advice, "Url", where, required=False)
    return remediation(text(advice, "Text", where, required=False), [url] if url else [])


def asff_finding(finding: Any) -> dict[str, Any]:
    """The Finding fields of one ASFF finding."""
    what = "ASFF finding"
    finding = expect_dict(finding, what)
    account = text(finding, "AwsAccountId", what, required=False)
    region = text(finding, "Region", what, required=False)
    items = expect_list(finding.get("Resources"), f"{what} Resources")
    resources = [
        _asff_resource_entity(item, region, account, f"{what} Resources[{index}]") for index, item in enumerate(items)
    ]
    if not resources:
        raise DecodeError(f"{what}: no Resources")
    observed_at = finding.get("UpdatedAt") or finding.get("LastObservedAt") or finding.get("CreatedAt")
    if observed_at is None:
        raise DecodeError(f"{what}: no time (UpdatedAt)")
    if region is None and isinstance(items[0], dict):
        region = text(items[0], "Region", f"{what} Resources[0]", required=False)
    return {
        "uid": text(finding, "Id", what),
        "source": "securityhub",
        "check": _asff_check(finding, what),
        "title": text(finding, "Title", what),
        "severity": _asff_severity(finding, what),
        "status": "resolved" if _asff_resolved(finding, what) else "open",
        "resources": list(dict.fromkeys(resources)),
        "account": account,
        "region": region,
        "observed_at": observed_at,
        "compliance": _asff_compliance(finding, what),
        "remediation": _asff_remediation(finding, what),
    }


def _ocsf_check(finding: dict[str, Any], what: str) -> str | None:
    control = text(section(finding, "compliance", what), "control", f"{what} compliance", required=False)
    if control:
        return control
    info = section(finding, "finding_info", what)
    listed = expect_list(info.get("types") or [], f"{what} finding_info.types")
    types = [item for item in listed if isinstance(item, str)]
    if types:
        return types[-1]
    return text(section(info, "analytic", f"{what} finding_info"), "name", f"{what} finding_info.analytic",
                required=False)


def ocsf_finding(finding: Any) -> dict[str, Any]:
    """The Finding fields of one Security Hub OCSF finding (Compliance, Detection ... Finding)."""
    what = "Security Hub OCSF finding"
    finding = expect_dict(finding, what)
    fields = ocsf_finding_fields(finding, what)
    compliance = section(finding, "compliance", what)
    compliance_status = integer(compliance, "status_id", f"{what} compliance")
    passed = compliance_status == _OCSF_PASS or compliance.get("status") in ("Pass", "PASSED")
    where = f"{what} compliance"
    return {
        **fields,
        "compliance": _controls(text(compliance, "control", where, required=False),
                                strings(compliance, "standards", where), strings(compliance, "requirements", where)),
        "source": "securityhub",
        "check": _ocsf_check(finding, what) or fields["title"],
        "status": "resolved" if passed or ocsf_closed(finding, what) else "open",
    }
