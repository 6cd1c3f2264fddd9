"""The SIEM feed: escalation events as OCSF Detection Findings that validate, with the lifecycle mapped."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator
from py_ocsf_models.events.findings.detection_finding import DetectionFinding
from receivers import escalation_event, load_schema

from stream.correlate.lifecycle import escalation_uid
from stream.deliver.ocsf import OCSF_SCHEMA_VERSION, PRODUCT_VERSION, to_ocsf
from stream.models import DecodeError

ESCALATION_SCHEMA = Draft202012Validator(load_schema("escalation.schema.json"),
                                         format_checker=Draft202012Validator.FORMAT_CHECKER)
OCSF_SCHEMA = Draft202012Validator(load_schema("ocsf-detection-finding.schema.json"))


def validated_ocsf(event: dict) -> dict:
    """to_ocsf of a schema-valid event, checked against our schema and py-ocsf-models' model."""
    ESCALATION_SCHEMA.validate(event)
    ocsf = to_ocsf(event)
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
