"""Findings decoders: the real Prowler and Security Hub samples, plus Security Hub OCSF and AWS Config
events built field for field from their published shapes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from inputs import compliance_finding, config_event, needs_samples, sample, v2_event
from paths import SAMPLES

from stream.ingest.formats.findings import decode_findings
from stream.models import DecodeError, Finding


def decode(document: Any) -> list[Finding]:
    return decode_findings(orjson.dumps(document))


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


# --- Prowler OCSF -------------------------------------------------------------------------------


@needs_samples
def test_prowler_aws_output_decodes_every_finding_with_its_check_severity_and_status():
    findings = decode_findings((SAMPLES / "prowler-ocsf/example_output_aws.ocsf.json").read_bytes())

    assert [(f.check, f.severity, f.status) for f in findings] == [
        ("accessanalyzer_enabled", "low", "open"),  # FAIL
        ("account_maintain_current_contact_details", "informational", "open"),  # MANUAL
        ("account_maintain_different_contact_details_to_security_billing_and_operations", "medium", "open"),
        ("account_security_contact_information_is_registered", "informational", "open"),  # MANUAL
        ("account_security_questions_are_registered_in_the_aws_account", "informational", "open"),  # MANUAL
    ]
    contact = findings[2]
    assert contact.source == "prowler"
    assert contact.uid == "<finding_uid>"
    assert contact.title == "Maintain different contact details to security, billing and operations."
    assert contact.resources == ["arn:aws:iam::<account_uid>:root"]
    assert (contact.account, contact.region) == ("<account_uid>", "<region>")
    # `time` is epoch seconds (1739539623); Prowler's time_dt is local time, so it is not used.
    assert contact.observed_at == datetime(2025, 2, 14, 13, 27, 3, tzinfo=UTC)


@needs_samples
def test_prowler_resource_without_an_arn_keeps_a_readable_id():
    analyzer = decode_findings((SAMPLES / "prowler-ocsf/example_output_aws.ocsf.json").read_bytes())[0]
    assert analyzer.resources == ["Other/<resource_uid>"]


@needs_samples
def test_prowler_kubernetes_pod_resources_become_pod_entities_and_pass_resolves():
    findings = decode_findings((SAMPLES / "prowler-ocsf/example_output_kubernetes.ocsf.json").read_bytes())

    assert len(findings) == 6
    assert {tuple(f.resources) for f in findings} == {("k8s:pod/<namespace>/<pod>",)}
    by_check = {f.check: f for f in findings}
    assert by_check["apiserver_anonymous_requests"].status == "resolved"  # PASS
    assert by_check["apiserver_anonymous_requests"].severity == "high"
    assert by_check["apiserver_always_pull_images_plugin"].status == "open"  # FAIL
    assert by_check["apiserver_always_pull_images_plugin"].account is None  # no cloud section for k8s


@needs_samples
def test_muted_prowler_finding_is_resolved():
    muted = sample("prowler-ocsf/example_output_aws.ocsf.json")[0]
    muted.update(status_id=3, status="Suppressed")
    assert decode(muted)[0].status == "resolved"


@needs_samples
def test_prowler_kubernetes_resource_that_is_not_a_pod_names_its_kind():
    finding = sample("prowler-ocsf/example_output_kubernetes.ocsf.json")[0]
    finding["resources"][0].update(type="ClusterRoleBinding", name="cluster-admin-ci", data={"metadata": {}})
    del finding["resources"][0]["namespace"]
    finding["metadata"]["profiles"] = ["container"]
    assert decode(finding)[0].resources == ["k8s:clusterrolebinding/cluster-admin-ci"]


@needs_samples
def test_prowler_finding_without_resources_is_refused():
    finding = sample("prowler-ocsf/example_output_aws.ocsf.json")[0]
    finding["resources"] = []
    with pytest.raises(DecodeError, match="no resources"):
        decode(finding)


@needs_samples
def test_one_bad_item_of_a_prowler_array_names_its_index():
    findings = sample("prowler-ocsf/example_output_aws.ocsf.json")
    findings[3]["status_code"] = "MAYBE"
    with pytest.raises(DecodeError, match=r"^\[3\]: Prowler finding: status_code"):
        decode(findings)


# --- Security Hub ASFF ---------------------------------------------------------------------------

ASFF_EXPECTED = {
    # sample: (check, severity, status, resource, region)
    "asff_afsbp-s3.8.json": ("S3.8", "high", "open", "arn:aws:s3:::example", "us-east-1"),
    "asff_afsbp-s3.2.json": ("S3.2", "informational", "resolved", "arn:aws:s3:::so0111-aws-cloudtrail-111111111111",
                             "us-east-1"),
    "asff_afsbp-ec2.8.json": ("EC2.8", "high", "open",
                              "arn:aws:ec2:us-east-1:111111111111:instance/i-077c4d5f32561ac45", "us-east-1"),
    "asff_afsbp-rds.2.json": ("RDS.2", "critical", "open", "arn:aws:rds:us-east-1:111111111111:db:database-1",
                              "us-east-1"),
    "asff_afsbp-lambda.1.json": ("Lambda.1", "informational", "open",
                                 "arn:aws:lambda:us-east-1:111111111111:function:TAEBSVolumeSnapDelete", "us-east-1"),
    "asff_cis-42.json": ("4.2", "high", "open",
                         "arn:aws:ec2:us-east-1:111111111111:security-group/sg-3d10bb58e8b1355ed", "us-east-1"),
}


@needs_samples
@pytest.mark.parametrize("name", sorted(ASFF_EXPECTED))
def test_asff_sample_decodes_to_its_control_severity_status_and_resource(name):
    raw = sample(f"aws-securityhub-asff/{name}")
    check, severity, status, resource, region = ASFF_EXPECTED[name]

    [finding] = decode(raw)

    assert (finding.check, finding.severity, finding.status) == (check, severity, status)
    assert finding.resources == [resource]
    assert finding.region == region
    assert finding.source == "securityhub"
    assert finding.uid == raw["Id"]
    assert finding.title == raw["Title"]
    assert finding.account == "111111111111"
    assert finding.observed_at == utc(raw["UpdatedAt"])


@needs_samples
def test_asff_sample_reads_the_same_bare_in_a_batch_and_in_an_eventbridge_event():
    raws = [sample(f"aws-securityhub-asff/{name}") for name in sorted(ASFF_EXPECTED)]
    bare = [decode(raw)[0] for raw in raws]
    batch = decode({"Findings": raws})
    events = [decode({"version": "0", "detail-type": "Security Hub Findings - Imported", "source": "aws.securityhub",
                      "detail": {"findings": [raw]}})[0] for raw in raws]
    assert batch == bare
    assert events == bare


@needs_samples
def test_eventbridge_sample_account_resource_becomes_the_account_root_arn():
    [finding] = decode_findings((SAMPLES / "aws-securityhub-asff/eventbridge-imported_afsbp-ec2.7.json").read_bytes())
    assert finding.check == "EC2.7"
    assert finding.resources == ["arn:aws:iam::111111111111:root"]
    assert (finding.severity, finding.status) == ("informational", "open")


@needs_samples
@pytest.mark.parametrize("change", [
    {"RecordState": "ARCHIVED"},
    {"Workflow": {"Status": "SUPPRESSED"}},
    {"Workflow": {"Status": "RESOLVED"}},
    {"Compliance": {"Status": "PASSED"}},
])
def test_asff_finding_is_resolved_by_record_state_workflow_or_compliance(change):
    raw = sample("aws-securityhub-asff/asff_afsbp-s3.8.json")
    raw.update(change)
    assert decode(raw)[0].status == "resolved"


@needs_samples
def test_asff_severity_falls_back_to_the_normalized_score():
    raw = sample("aws-securityhub-asff/asff_afsbp-s3.8.json")
    raw["Severity"] = {"Normalized": 45}
    del raw["FindingProviderFields"]
    assert decode(raw)[0].severity == "medium"


@needs_samples
def test_asff_wrong_type_in_a_known_field_names_the_field():
    raw = sample("aws-securityhub-asff/asff_afsbp-s3.8.json")
    raw["Title"] = 42
    with pytest.raises(DecodeError, match="'Title' must be a string"):
        decode(raw)


# --- Security Hub OCSF ("Findings Imported V2") ------------------------------------------------------


def test_security_hub_ocsf_compliance_finding_fails_open_and_passes_resolved():
    [failed] = decode(v2_event(compliance_finding("Fail", 3)))
    [passed] = decode(v2_event(compliance_finding("Pass", 1)))

    assert failed.source == "securityhub"
    assert failed.check == "S3.8"
    assert (failed.severity, failed.status) == ("high", "open")
    assert failed.resources == ["arn:aws:s3:::acme-statements"]
    assert (failed.account, failed.region) == ("111122223333", "eu-west-1")
    assert failed.observed_at == datetime(2025, 7, 22, 3, 2, 34, 272000, tzinfo=UTC)  # `time` is milliseconds
    assert passed.status == "resolved"
    assert passed.uid == failed.uid


def test_security_hub_ocsf_resource_named_by_type_and_id_becomes_its_arn():
    finding = compliance_finding("Fail", 3)
    finding["resources"] = [{"type": "AWS::EC2::Instance", "uid": "i-0a1b2c3d4e5f67890", "region": "eu-west-1",
                             "owner": {"account": {"uid": "111122223333"}}}]
    assert decode(v2_event(finding))[0].resources == ["arn:aws:ec2:eu-west-1:111122223333:instance/i-0a1b2c3d4e5f67890"]


def test_security_hub_ocsf_detection_finding_suppressed_is_resolved_and_checks_its_threat_type():
    finding = compliance_finding("Fail", 3)
    del finding["compliance"]
    finding.update(class_uid=2004, class_name="Detection Finding", type_uid=200402, status_id=3, status="Suppressed",
                   severity_id=2, severity="Low")
    finding["metadata"]["product"].update(name="GuardDuty",
                                          uid="arn:aws:securityhub:eu-west-1::productv2/aws/guardduty")
    finding["finding_info"]["types"] = ["Stealth:IAMUser/CloudTrailLoggingDisabled"]
    finding["resources"] = [{"type": "AWS::IAM::AccessKey", "uid": "ASIAEXAMPLEKEY12345", "name": "ci-deployer",
                             "region": "eu-west-1"}]

    [decoded] = decode(v2_event(finding))

    assert decoded.check == "Stealth:IAMUser/CloudTrailLoggingDisabled"
    assert (decoded.severity, decoded.status) == ("low", "resolved")
    assert decoded.resources == ["AWS::IAM::AccessKey/ASIAEXAMPLEKEY12345"]


def test_ocsf_finding_from_another_product_is_refused_by_name():
    finding = compliance_finding("Fail", 3)
    finding["metadata"]["product"] = {"name": "SomeScanner", "uid": "somescanner"}
    with pytest.raises(DecodeError, match="unsupported product"):
        decode(finding)


# --- AWS Config -------------------------------------------------------------------------------------


def test_config_non_compliant_opens_and_compliant_resolves_the_same_finding():
    [opened] = decode(config_event("NON_COMPLIANT"))
    [resolved] = decode(config_event("COMPLIANT"))

    assert opened.source == "awsconfig"
    assert opened.check == "s3-bucket-public-read-prohibited"
    assert opened.status == "open"
    assert opened.resources == ["arn:aws:s3:::acme-statements"]
    assert (opened.account, opened.region) == ("111122223333", "eu-west-1")
    assert opened.observed_at == datetime(2026, 3, 2, 10, 15, 4, 741000, tzinfo=UTC)
    assert resolved.status == "resolved"
    assert resolved.uid == opened.uid


def test_config_insufficient_data_is_no_verdict():
    assert decode(config_event("INSUFFICIENT_DATA")) == []


def test_config_bare_detail_as_sns_delivers_it_decodes_the_same():
    event = config_event("NON_COMPLIANT")
    assert decode(event["detail"]) == decode(event)


@pytest.mark.parametrize(("resource_type", "resource_id", "entity"), [
    ("AWS::EC2::SecurityGroup", "sg-0ledger", "arn:aws:ec2:eu-west-1:111122223333:security-group/sg-0ledger"),
    ("AWS::::Account", "111122223333", "arn:aws:iam::111122223333:root"),
    ("AWS::IAM::User", "AIDAW6MN5QPJPMC7R4QBE", "AWS::IAM::User/AIDAW6MN5QPJPMC7R4QBE"),  # a unique id, not a name
])
def test_config_resource_ids_become_entities(resource_type, resource_id, entity):
    assert decode(config_event("NON_COMPLIANT", resource_type, resource_id))[0].resources == [entity]


# --- what is not a finding ----------------------------------------------------------------------


@pytest.mark.parametrize(("document", "reason"), [
    ({"rule": "Terminal shell in container", "priority": "Notice", "output": "shell"}, "unknown finding format"),
    ({"detail-type": "GuardDuty Finding", "detail": {}}, "is not a finding event"),
    ("just text", "must be a JSON object"),
    ([1, 2], r"^\[0\]: a finding must be a JSON object"),
])
def test_what_is_not_a_finding_is_refused_with_a_reason(document, reason):
    with pytest.raises(DecodeError, match=reason):
        decode(document)


def test_record_that_is_not_json_is_refused():
    with pytest.raises(DecodeError, match="not valid JSON"):
        decode_findings(b'{"Findings": [')


@needs_samples
def test_time_without_an_offset_is_read_as_utc():
    raw = sample("aws-securityhub-asff/asff_afsbp-s3.8.json")
    raw["UpdatedAt"] = "2022-02-21T09:49:08"
    finding = decode(raw)[0]
    assert finding.observed_at == datetime(2022, 2, 21, 9, 49, 8, tzinfo=UTC)
    assert finding.to_record()["observed_at"].endswith("Z")
