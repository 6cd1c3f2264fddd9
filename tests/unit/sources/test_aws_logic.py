"""The AWS connectors' pure parts: cursor semantics, request filters, Config events, asset building and
error lines. The live parts (moto server, Kafka) are in test_aws_connectors.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import orjson
import pytest
from botocore.exceptions import ClientError, NoCredentialsError
from botocore.validate import ParamValidator

from stream.ingest.formats.findings import decode_findings
from stream.settings import ConfigError, load_settings
from stream.sources.aws.assets import Inventory, build_assets, tag_keys
from stream.sources.aws.cursor import Cursor, FileCursorStore, Progress, StateError
from stream.sources.aws.findings import PullOptions, compliance_change_event, securityhub_filters
from stream.sources.aws.session import describe_failure

pytestmark = pytest.mark.aws

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
T1 = T0 + timedelta(seconds=30)
NOW = T1 + timedelta(days=1)
ACCOUNT = "123456789012"


def stamped(item_id: str, at: datetime) -> tuple[str, datetime, str]:
    return item_id, at, item_id


# --- cursors ------------------------------------------------------------------------------------


def test_a_pass_takes_every_item_whatever_the_order_and_the_cursor_lands_on_the_newest():
    progress = Progress(Cursor(), NOW)
    taken = progress.take([stamped("b", T1), stamped("a", T0), stamped("c", T1)])

    assert taken == ["b", "a", "c"]
    assert progress.cursor == Cursor(T1, frozenset({"b", "c"}))


def test_items_at_the_cursor_instant_are_skipped_only_when_already_seen():
    progress = Progress(Cursor(T1, frozenset({"b", "c"})), NOW)
    taken = progress.take([stamped("a", T0), stamped("b", T1), stamped("d", T1), stamped("c", T1)])

    assert taken == ["d"]
    assert progress.cursor == Cursor(T1, frozenset({"b", "c", "d"}))


def test_an_update_after_the_cursor_is_taken_again_under_the_same_id():
    progress = Progress(Cursor(T0, frozenset({"a"})), NOW)

    assert progress.take([stamped("a", T0), stamped("a", T1)]) == ["a"]
    assert progress.cursor == Cursor(T1, frozenset({"a"}))


def test_file_cursors_survive_a_restart_and_a_damaged_file_is_one_clear_error(tmp_path):
    path = tmp_path / "findings.ndjson.cursor.json"
    FileCursorStore(path).save("securityhub/123456789012/us-east-1", Cursor(T0, frozenset({"x", "y"})))

    assert FileCursorStore(path).get("securityhub/123456789012/us-east-1") == Cursor(T0, frozenset({"x", "y"}))
    assert FileCursorStore(path).get("securityhub/123456789012/eu-west-1") == Cursor()

    path.write_text('{"securityhub/123456789012/us-east-1": {"seen_ids_at_cursor": "x"}}')
    with pytest.raises(StateError, match="bad cursor in .* delete it to pull that source from the start"):
        FileCursorStore(path)


# --- Security Hub request ----------------------------------------------------------------------


def test_filters_ask_from_the_cursor_second_and_carry_the_users_choices_in_a_valid_request():
    now = datetime(2025, 3, 2, tzinfo=UTC)
    options = PullOptions(record_states=("ACTIVE",), workflow_statuses=("NEW", "NOTIFIED"),
                          product_names=("GuardDuty",))
    filters = securityhub_filters(Cursor(T0, frozenset({"a"})), options, now)

    assert filters["UpdatedAt"] == [{"Start": "2025-03-01T12:00:00Z", "End": "2025-03-03T00:00:00Z"}]
    assert [f["Value"] for f in filters["WorkflowStatus"]] == ["NEW", "NOTIFIED"]
    assert filters["RecordState"] == [{"Value": "ACTIVE", "Comparison": "EQUALS"}]
    assert filters["ProductName"] == [{"Value": "GuardDuty", "Comparison": "EQUALS"}]
    model = boto3.session.Session(region_name="us-east-1").client("securityhub").meta.service_model
    report = ParamValidator().validate({"Filters": filters}, model.operation_model("GetFindings").input_shape)
    assert not report.has_errors(), report.generate_report()


def test_the_first_pull_asks_for_everything():
    assert securityhub_filters(Cursor(), PullOptions(), datetime.now(UTC)) == {}


# --- AWS Config -----------------------------------------------------------------------------------


def evaluation_result(compliance: str, recorded: datetime) -> dict:
    """One EvaluationResult as boto3 returns it from GetComplianceDetailsByConfigRule (times parsed)."""
    return {
        "EvaluationResultIdentifier": {
            "EvaluationResultQualifier": {
                "ConfigRuleName": "s3-bucket-public-read-prohibited",
                "ResourceType": "AWS::S3::Bucket",
                "ResourceId": "pay-ledger-exports",
                "EvaluationMode": "DETECTIVE",
            },
            "OrderingTimestamp": recorded - timedelta(minutes=2),
            "ResourceEvaluationId": "",
        },
        "ComplianceType": compliance,
        "ResultRecordedTime": recorded,
        "ConfigRuleInvokedTime": recorded - timedelta(seconds=20),
        "Annotation": "The bucket policy allows public read access.",
    }


def test_config_results_become_compliance_change_events_the_findings_decoder_reads():
    opened = compliance_change_event(evaluation_result("NON_COMPLIANT", T0), ACCOUNT, "eu-west-1")
    fixed = compliance_change_event(evaluation_result("COMPLIANT", T1), ACCOUNT, "eu-west-1")

    assert opened["detail-type"] == "Config Rules Compliance Change" and opened["source"] == "aws.config"
    assert opened["detail"]["newEvaluationResult"]["evaluationResultIdentifier"]["evaluationResultQualifier"] == {
        "configRuleName": "s3-bucket-public-read-prohibited", "resourceType": "AWS::S3::Bucket",
        "resourceId": "pay-ledger-exports", "evaluationMode": "DETECTIVE",
    }
    assert opened["time"] == "2025-03-01T12:00:00.123Z"
    assert opened["id"] != fixed["id"]
    assert opened == compliance_change_event(evaluation_result("NON_COMPLIANT", T0), ACCOUNT, "eu-west-1")

    (open_finding,) = decode_findings(orjson.dumps(opened))
    (resolved_finding,) = decode_findings(orjson.dumps(fixed))
    assert (open_finding.status, resolved_finding.status) == ("open", "resolved")
    assert open_finding.uid == resolved_finding.uid
    assert open_finding.resources == ["arn:aws:s3:::pay-ledger-exports"]
    assert (open_finding.account, open_finding.region) == (ACCOUNT, "eu-west-1")


# --- assets -------------------------------------------------------------------------------------

SG = f"arn:aws:ec2:us-east-1:{ACCOUNT}:security-group/sg-0a1b2c3d"
INSTANCE = f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-0123456789abcdef0"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/payments-api"
PROFILE = f"arn:aws:iam::{ACCOUNT}:instance-profile/payments-api"
BUCKET = "arn:aws:s3:::pay-ledger-exports"


def inventory() -> Inventory:
    found = Inventory(
        tags={
            INSTANCE: {"Hotpath:Service": "payments-api", "Name": "payments-1"},
            BUCKET: {"Criticality": "Critical", "data-classification": "PCI", "team": "ledger"},
            ROLE: {"hotpath:service": "payments-api"},
            f"arn:aws:ec2:us-east-1:{ACCOUNT}:volume/vol-1": {"Name": "scratch"},
        },
        instance_profiles={INSTANCE: PROFILE},
        profile_roles={PROFILE: {ROLE}},
    )
    found.alias(BUCKET, "pay-ledger-exports")
    found.guards[SG].add(INSTANCE)
    return found


def test_assets_join_tags_aliases_and_who_exercises_groups_and_roles():
    assets = {asset.id: asset for asset in build_assets(inventory(), tag_keys(load_settings(), []), print)}

    assert sorted(assets) == [INSTANCE, SG, ROLE, BUCKET]  # the volume has nothing to say
    assert assets[SG].exercised_via == [INSTANCE, "service:payments-api"]
    assert assets[ROLE].exercised_via == [INSTANCE, "service:payments-api"]
    assert assets[BUCKET].tags.criticality == "critical" and assets[BUCKET].tags.data_classification == "pci"
    assert assets[BUCKET].aliases == ["pay-ledger-exports"]
    assert assets[INSTANCE].service == "payments-api" and assets[INSTANCE].exercised_via == []


def test_tag_keys_are_configurable_and_bad_tag_values_are_reported_not_kept():
    warnings: list[str] = []
    found = inventory()
    found.tags[BUCKET]["Criticality"] = "urgent"
    keys = tag_keys(load_settings(aws_tag_keys={"owner": "team"}), ["service="])
    assets = {asset.id: asset for asset in build_assets(found, keys, warnings.append)}

    assert assets[BUCKET].tags.owner == "ledger" and assets[BUCKET].tags.criticality is None
    assert warnings == [
        f"assets: {BUCKET}: tag criticality='urgent' is not one of critical, high, medium, low; ignored"]
    # Service reading switched off: the instance has nothing left to say, the group no service.
    assert INSTANCE not in assets and assets[SG].exercised_via == [INSTANCE]


def test_an_unknown_asset_field_is_a_configuration_error():
    with pytest.raises(ConfigError, match="unknown asset field 'team'"):
        tag_keys(load_settings(), ["team=owner"])


# --- error lines --------------------------------------------------------------------------------


def client_error(code: str, status: int, operation: str = "GetFindings") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "not allowed"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


@pytest.mark.parametrize(("service", "operation", "error", "line"), [
    ("securityhub", "get_findings", client_error("AccessDeniedException", 403),
     "access denied: the credentials lack securityhub:GetFindings in 123456789012/eu-west-1"),
    ("resourcegroupstaggingapi", "get_resources", client_error("AccessDeniedException", 400, "GetResources"),
     "access denied: the credentials lack tag:GetResources in 123456789012/eu-west-1"),
    ("ec2", "describe_instances", client_error("UnauthorizedOperation", 403, "DescribeInstances"),
     "access denied: the credentials lack ec2:DescribeInstances in 123456789012/eu-west-1"),
    ("securityhub", "get_findings", client_error("ExpiredTokenException", 403),
     "the credentials were rejected (ExpiredTokenException) calling securityhub:GetFindings in "
     "123456789012/eu-west-1: check the standard chain"),
    ("securityhub", "get_findings", NoCredentialsError(),
     "no AWS credentials in the standard chain (AWS_PROFILE, AWS_ACCESS_KEY_ID, SSO login, instance or task role)"),
])
def test_failures_are_one_line_naming_the_iam_action(service, operation, error, line):
    client = boto3.session.Session(region_name="eu-west-1").client(service)
    assert describe_failure(client, operation, error, "123456789012/eu-west-1") == line


def test_a_finding_from_the_future_does_not_carry_the_cursor_past_now():
    progress = Progress(Cursor(T0), NOW)
    forged = datetime(2100, 1, 1, tzinfo=UTC)
    assert progress.take([stamped("forged", forged), stamped("a", T1)]) == ["forged", "a"]
    assert progress.cursor == Cursor(NOW, frozenset({"forged"}))

    later = NOW + timedelta(minutes=5)
    assert Progress(progress.cursor, later + timedelta(minutes=1)).take([stamped("b", later)]) == ["b"]


def test_a_cursor_saved_in_the_future_is_read_as_now():
    assert Cursor(datetime(2100, 1, 1, tzinfo=UTC), frozenset({"x"})).not_after(NOW) == Cursor(NOW)
    assert Cursor(T1, frozenset({"x"})).not_after(NOW) == Cursor(T1, frozenset({"x"}))
