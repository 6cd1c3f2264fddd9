"""Compliance and remediation: every finding format keeps the controls it fails and the fix its source advises,
bounded, with only http(s) links."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from inputs import compliance_finding, config_event, needs_samples, sample, v2_event

from stream.ingest.formats.compliance import (
    COMPLIANCE_MAX_CHARS,
    DESCRIPTION_MAX_CHARS,
    MAX_CONTROLS,
    MAX_FRAMEWORKS,
    MAX_REFERENCES,
    NAME_MAX_CHARS,
)
from stream.ingest.formats.findings import decode_findings
from stream.models import DecodeError, Finding, Remediation


def decode(document: Any) -> list[Finding]:
    return decode_findings(orjson.dumps(document))


def imported(finding: dict[str, Any]) -> dict[str, Any]:
    """A bare ASFF finding in the EventBridge event Security Hub sends it in."""
    return {"detail-type": "Security Hub Findings - Imported", "source": "aws.securityhub",
            "detail": {"findings": [finding]}}


def prowler_finding(**changes: Any) -> dict[str, Any]:
    finding = sample("prowler-ocsf/example_output_aws.ocsf.json")[0]
    finding.update(changes)
    return finding


@needs_samples
def test_prowler_keeps_every_framework_and_only_the_web_references():
    accessanalyzer = decode(sample("prowler-ocsf/example_output_aws.ocsf.json"))[0]

    assert accessanalyzer.compliance["CIS-2.0"] == ["1.20"]
    assert accessanalyzer.compliance["KISA-ISMS-P-2023"] == ["2.5.6", "2.6.4", "2.8.1", "2.8.2"]
    assert accessanalyzer.compliance["AWS-Account-Security-Onboarding"] == [
        "Enabled security services", "Create analyzers in each active regions",
        "Verify that events are present in SecurityHub aggregated view"]
    # Prowler lists the CLI command among its references: not a link anyone can follow
    assert accessanalyzer.remediation == Remediation(
        description="Enable IAM Access Analyzer for all accounts, create analyzer and take action over it is "
                    "recommendations (IAM Access Analyzer is available at no additional cost).",
        references=["https://docs.aws.amazon.com/IAM/latest/UserGuide/what-is-access-analyzer.html"])


@needs_samples
def test_prowler_kubernetes_findings_carry_their_cis_controls():
    apiserver = decode(sample("prowler-ocsf/example_output_kubernetes.ocsf.json"))[0]

    assert apiserver.compliance == {"CIS-1.10": ["1.2.11"], "CIS-1.8": ["1.2.11"]}
    assert apiserver.remediation.references == [
        "https://docs.prowler.com/checks/kubernetes/kubernetes-policy-index/"
        "ensure-that-the-admission-control-plugin-alwayspullimages-is-set#kubernetes",
        "https://kubernetes.io/docs/reference/access-authn-authz/admission-controllers"]


@needs_samples
@pytest.mark.parametrize(("name", "standard", "control"), [
    ("asff_afsbp-s3.8.json", "AWS Foundational Security Best Practices v1.0.0", "S3.8"),
    ("asff_afsbp-rds.2.json", "AWS Foundational Security Best Practices v1.0.0", "RDS.2"),
    ("asff_cis-42.json", "CIS AWS Foundations Benchmark v1.2.0", "4.2"),  # StandardsGuideArn + RuleId
])
def test_asff_findings_before_consolidated_controls_name_the_standard_in_product_fields(name, standard, control):
    finding = sample(f"aws-securityhub-asff/{name}")
    [decoded] = decode(imported(finding))

    assert decoded.compliance == {standard: [control]}
    recommendation = finding["Remediation"]["Recommendation"]
    assert decoded.remediation == Remediation(description=recommendation["Text"], references=[recommendation["Url"]])


@needs_samples
def test_asff_consolidated_controls_are_named_under_each_associated_standard_with_related_requirements():
    finding = sample("aws-securityhub-asff/asff_afsbp-ec2.8.json")
    finding["Compliance"].update(
        AssociatedStandards=[{"StandardsId": "standards/aws-foundational-security-best-practices/v/1.0.0"},
                             {"StandardsId": "standards/nist-800-53/v/5.0.0"},
                             {"StandardsId": "standards/pci-dss/v/4.0.1"}],
        RelatedRequirements=["NIST.800-53.r5 AC-21", "NIST.800-53.r5 SC-7(3)", "PCI DSS v4.0.1/1.3.1",
                             "CIS AWS Foundations Benchmark v1.2.0/4.1", "NIST.800-53.r5 AC-21"])
    [decoded] = decode(imported(finding))

    assert decoded.compliance == {
        "AWS Foundational Security Best Practices v1.0.0": ["EC2.8"],
        "NIST SP 800-53 v5.0.0": ["EC2.8"],
        "PCI DSS v4.0.1": ["EC2.8", "1.3.1"],
        "NIST.800-53.r5": ["AC-21", "SC-7(3)"],
        "CIS AWS Foundations Benchmark v1.2.0": ["4.1"],
    }


def test_security_hub_ocsf_findings_keep_control_standards_requirements_and_remediation():
    finding = compliance_finding("Fail", 3)
    finding["compliance"]["requirements"] = ["PCI DSS v4.0.1/1.3.1"]
    finding["remediation"] = {"desc": "Turn on Block Public Access.",
                              "references": ["https://docs.aws.amazon.com/console/securityhub/S3.8/remediation"]}
    [decoded] = decode(v2_event(finding))

    assert decoded.compliance == {"AWS Foundational Security Best Practices v1.0.0": ["S3.8"],
                                  "PCI DSS v4.0.1": ["1.3.1"]}
    assert decoded.remediation.description == "Turn on Block Public Access."


def test_an_aws_config_finding_fails_its_rule_as_an_aws_config_control():
    [decoded] = decode(config_event("NON_COMPLIANT", rule="s3-bucket-public-read-prohibited"))

    assert decoded.compliance == {"AWS Config": ["s3-bucket-public-read-prohibited"]}
    assert decoded.remediation is None


@needs_samples
def test_a_finding_whose_source_names_nothing_has_empty_compliance_and_no_remediation():
    finding = prowler_finding(remediation=None, unmapped={})
    [decoded] = decode(finding)

    assert decoded.compliance == {} and decoded.remediation is None
    assert decoded.to_record()["compliance"] == {} and decoded.to_record()["remediation"] is None


@needs_samples
def test_hostile_compliance_and_remediation_are_bounded():
    many = {"x" * 10_000: ["y" * 10_000]}
    many |= {f"framework-{i}": [f"control-{j}" for j in range(100)] for i in range(100)}
    references = ["javascript:alert(1)", "ftp://files.example/fix", "https://", "https://ok.example/a b",
                  *(f"https://docs.example/{i}" for i in range(50)), "https://long.example/" + "a" * 5000]
    finding = prowler_finding(unmapped={"compliance": many},
                              remediation={"desc": "fix " * 10_000, "references": references})
    [decoded] = decode(finding)

    assert len(decoded.compliance) <= MAX_FRAMEWORKS
    assert max(len(controls) for controls in decoded.compliance.values()) == MAX_CONTROLS
    assert list(decoded.compliance)[:2] == ["x" * (NAME_MAX_CHARS - 3) + "...", "framework-0"]
    assert decoded.compliance["framework-0"] == [f"control-{j}" for j in range(MAX_CONTROLS)]
    names = sum(len(framework) + sum(map(len, controls)) for framework, controls in decoded.compliance.items())
    assert COMPLIANCE_MAX_CHARS - NAME_MAX_CHARS < names <= COMPLIANCE_MAX_CHARS
    assert len(decoded.remediation.description) == DESCRIPTION_MAX_CHARS
    assert decoded.remediation.references == [f"https://docs.example/{i}" for i in range(MAX_REFERENCES)]


@needs_samples
@pytest.mark.parametrize(("changes", "reason"), [
    ({"unmapped": {"compliance": ["CIS-2.0"]}}, "unmapped.compliance must be a JSON object"),
    ({"unmapped": {"compliance": {"CIS-2.0": "2.1.5"}}}, "unmapped.compliance.CIS-2.0 must be a JSON array"),
    ({"unmapped": {"compliance": {"CIS-2.0": [2]}}}, "controls must be strings"),
    ({"remediation": {"desc": "x", "references": "https://a.example"}}, "remediation references must be a JSON array"),
    ({"remediation": "fix it"}, "remediation must be a JSON object"),
])
def test_malformed_compliance_or_remediation_is_a_decode_error_that_says_where(changes, reason):
    with pytest.raises(DecodeError, match=reason):
        decode(prowler_finding(**changes))
