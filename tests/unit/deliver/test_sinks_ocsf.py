"""The SIEM feed: escalation events as OCSF Detection Findings that validate, with the lifecycle mapped."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator
from py_ocsf_models.events.findings.detection_finding import DetectionFinding
from receivers import escalation_event, load_schema, with_compliance

from stream.correlate.lifecycle import escalation_uid
from stream.deliver.ocsf import OCSF_SCHEMA_VERSION, PRODUCT_VERSION, to_ocsf
from stream.models import DecodeError

ESCALATION_SCHEMA = Draft202012Validator(load_schema("escalation.schema.json"),
                                         format_checker=Draft202012Validator.FORMAT_CHECKER)
OCSF_SCHEMA = Draft202012Validator(load_schema("ocsf-detection-finding.schema.json"))


def validated_ocsf(event: dict, trace_url_template: str | None = None) -> dict:
    """to_ocsf of a schema-valid event, checked against our schema and py-ocsf-models' model."""
    ESCALATION_SCHEMA.validate(event)
    ocsf = to_ocsf(event, trace_url_template=trace_url_template)
    OCSF_SCHEMA.validate(ocsf)
    # Re-reading through the model and dumping again must give the same object: nothing we emit
    # falls outside the OCSF model (pydantic would drop it) or has the wrong type (it would raise).
    assert DetectionFinding.model_validate(ocsf).model_dump(mode="json", exclude_none=True) == ocsf
    return ocsf


@pytest.mark.parametrize(("state", "activity_id", "activity", "status_id"), [
    ("escalated", 1, "Create", 1),
    ("updated", 2, "Update", 1),
    ("resolved", 3, "Close", 4),
])
def test_lifecycle_maps_to_activity_and_status(state, activity_id, activity, status_id):
    ocsf = validated_ocsf(escalation_event(state=state, version=activity_id))

    assert (ocsf["class_uid"], ocsf["category_uid"]) == (2004, 2)
    assert ocsf["activity_id"] == activity_id and ocsf["activity_name"] == activity
    assert ocsf["type_uid"] == 2004 * 100 + activity_id
    assert ocsf["status_id"] == status_id


@pytest.mark.parametrize(("priority", "severity_id", "severity", "risk_level_id"), [
    ("P1", 5, "Critical", 4), ("P2", 4, "High", 3), ("P3", 3, "Medium", 2), ("P4", 2, "Low", 1),
    ("P5", 1, "Informational", 0),
])
def test_priority_maps_to_severity_and_risk_level(priority, severity_id, severity, risk_level_id):
    ocsf = validated_ocsf(escalation_event(priority=priority, score=87.6))

    assert (ocsf["severity_id"], ocsf["severity"], ocsf["risk_level_id"]) == (severity_id, severity, risk_level_id)
    assert ocsf["risk_score"] == 88


def test_finding_info_carries_the_dedup_uid_reasons_and_evidence():
    event = escalation_event(trace_ids=["4bf92f3577b34da6a3ce929d0e0e4736"], alert_uids=["falco-7", "gd-2"])

    info = validated_ocsf(event)["finding_info"]

    assert info["uid"] == escalation_uid(event["finding_uid"]) == event["escalation_uid"]
    assert info["title"] == event["finding"]["title"]
    assert all(reason in info["desc"] for reason in event["reasons"])
    assert [(r["type"], r["uid"]) for r in info["related_events"]] == [
        ("OpenTelemetry trace", "4bf92f3577b34da6a3ce929d0e0e4736"), ("Runtime alert", "falco-7"),
        ("Runtime alert", "gd-2")]
    assert info["first_seen_time"] == 1741942802125  # 2025-03-14T09:00:02.125Z in milliseconds


def test_resources_cloud_and_metadata():
    event = escalation_event()
    event["finding"]["resources"].append("arn:aws:dynamodb:eu-west-1:123456789012:table/ledger")

    ocsf = validated_ocsf(event)

    bucket, table = ocsf["resources"]
    assert (bucket["uid"], bucket["type"], bucket["name"]) == (
        "arn:aws:s3:::payments-exports", "aws:s3:bucket", "payments-exports")
    assert bucket["region"] == "eu-west-1" and bucket["cloud_partition"] == "aws"
    assert set(bucket["labels"]) == {"owner:payments", "environment:prod", "service:payments-api"}
    assert (table["type"], table["name"], table["region"]) == ("aws:dynamodb:table", "ledger", "eu-west-1")
    assert ocsf["cloud"] == {"provider": "aws", "region": "eu-west-1",
                             "account": {"uid": "123456789012", "name": "123456789012", "type_id": 10,
                                         "type": "AWS Account"}}
    metadata = ocsf["metadata"]
    assert metadata["product"]["name"] == "hotpath" and metadata["product"]["version"] == PRODUCT_VERSION
    assert metadata["version"] == OCSF_SCHEMA_VERSION
    assert metadata["uid"] == f"{event['escalation_uid']}:1"
    assert ocsf["time"] == 1741943697870
    assert ocsf["unmapped"]["hotpath"]["factors"] == event["factors"]


def test_versions_of_one_finding_share_the_finding_uid_but_not_the_object_uid():
    first = validated_ocsf(escalation_event(version=1))
    resolved = validated_ocsf(escalation_event(state="resolved", version=2))

    assert first["finding_info"]["uid"] == resolved["finding_info"]["uid"]
    assert first["metadata"]["uid"] != resolved["metadata"]["uid"]


def test_service_resource_without_cloud_account():
    event = escalation_event(resource="service:checkout", trace_ids=[], alert_uids=[])
    event["finding"].update(account=None, region=None, resources=["service:checkout"])

    ocsf = validated_ocsf(event)

    assert ocsf["resources"][0]["type"] == "service"
    assert ocsf["cloud"] == {"provider": "unknown"}
    assert "related_events" not in ocsf["finding_info"]


def test_an_event_that_breaks_the_escalation_schema_is_refused_with_a_reason():
    event = escalation_event()
    event["priority"] = "urgent"

    with pytest.raises(DecodeError, match="priority"):
        to_ocsf(event)


def test_each_framework_the_finding_fails_is_an_ocsf_compliance_object_while_it_is_open():
    event = with_compliance(escalation_event(), {"CIS-2.0": ["2.1.5", "2.1.4"], "PCI DSS v4.0.1": ["1.3.1"]})

    compliance = validated_ocsf(event)["unmapped"]["compliance"]

    assert compliance == [
        {"standards": ["CIS-2.0"], "requirements": ["2.1.5", "2.1.4"], "control": "s3_bucket_public_access",
         "status_id": 3},
        {"standards": ["PCI DSS v4.0.1"], "requirements": ["1.3.1"], "control": "s3_bucket_public_access",
         "status_id": 3}]
    resolved = validated_ocsf(with_compliance(escalation_event(state="resolved"), {"CIS-2.0": ["2.1.5"]}))
    assert "status_id" not in resolved["unmapped"]["compliance"][0]
    assert "compliance" not in validated_ocsf(escalation_event())["unmapped"]  # an event from before, or none named


def test_remediation_is_the_ocsf_remediation_object_masked():
    event = with_compliance(escalation_event(), {}, remediation={
        "description": "Block public access; test card 4111 1111 1111 1111 was found in the bucket policy",
        "references": ["https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-control-block-public-access.html",
                       "aws s3api put-public-access-block --bucket payments-exports"]})

    remediation = validated_ocsf(event)["remediation"]

    assert remediation["desc"] == "Block public access; test card **** **** **** 1111 was found in the bucket policy"
    assert remediation["references"] == [
        "https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-control-block-public-access.html"]
    links_only = with_compliance(escalation_event(), {}, remediation={"description": "", "references": ["https://x.io"]})
    assert validated_ocsf(links_only)["remediation"] == {"desc": "See the references.", "references": ["https://x.io"]}
    assert "remediation" not in validated_ocsf(escalation_event())


def test_observables_name_resources_services_traces_and_alerts_for_a_siem_to_pivot_on():
    event = escalation_event(trace_ids=["4bf92f3577b34da6a3ce929d0e0e4736"], alert_uids=["gd-2"])
    event["finding"]["resources"].append("arn:aws:dynamodb:eu-west-1:123456789012:table/ledger")

    observables = validated_ocsf(event)["observables"]

    assert [(o["type_id"], o["type"], o["value"], o["name"]) for o in observables] == [
        (10, "Resource UID", "arn:aws:s3:::payments-exports", "resources.uid"),
        (10, "Resource UID", "arn:aws:dynamodb:eu-west-1:123456789012:table/ledger", "resources.uid"),
        (99, "Service", "service:edge-gateway", "unmapped.hotpath.factors.exposure_path"),
        (99, "Service", "service:payments-api", "unmapped.hotpath.factors.exposure_path"),
        (99, "Service", "payments-api", "unmapped.hotpath.asset.service"),
        (99, "Trace ID", "4bf92f3577b34da6a3ce929d0e0e4736", "finding_info.related_events.uid"),
        (99, "Alert UID", "gd-2", "finding_info.related_events.uid")]


@pytest.mark.parametrize(("template", "link"), [
    ("http://jaeger.internal:16686/trace/{trace_id}", "http://jaeger.internal:16686/trace/4bf92f3577b34da6a3ce929d0e0e4736"),
    ('https://grafana.internal/explore?left={"datasource":"tempo","queries":[{"query":"{trace_id}"}]}',
     'https://grafana.internal/explore?left={"datasource":"tempo","queries":[{"query":"4bf92f3577b34da6a3ce929d0e0e4736"}]}'),
    ("https://console.aws.amazon.com/xray/home?region=eu-west-1#/traces/{xray_trace_id}",
     "https://console.aws.amazon.com/xray/home?region=eu-west-1#/traces/1-4bf92f35-77b34da6a3ce929d0e0e4736"),
])
def test_each_trace_evidence_links_to_the_trace_ui(template, link):
    event = escalation_event(trace_ids=["4bf92f3577b34da6a3ce929d0e0e4736"], alert_uids=["gd-2"])

    trace, alert = validated_ocsf(event, trace_url_template=template)["evidences"]

    assert trace["url"] == {"url_string": link}
    assert trace["data"] == {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}
    assert alert["data"] == {"alert_uid": "gd-2"} and "url" not in alert


def test_without_a_trace_ui_the_evidences_name_the_traces_without_links():
    evidences = validated_ocsf(escalation_event(alert_uids=[]))["evidences"]

    assert [e["data"]["trace_id"] for e in evidences] == ["4bf92f3577b34da6a3ce929d0e0e4736",
                                                          "0af7651916cd43dd8448eb211c80319c"]
    assert not any("url" in e for e in evidences)
    assert "evidences" not in validated_ocsf(escalation_event(trace_ids=[], alert_uids=[]))
