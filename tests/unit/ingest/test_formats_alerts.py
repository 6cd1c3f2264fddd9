"""Alert decoders: the real GuardDuty samples (bare and in EventBridge), and Falco events built field
for field from Falco's JSON output and falcosidekick's payload."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from inputs import POD, eks_finding, falco_event, guardduty, needs_samples

from stream.entities.resolve import EntityResolver
from stream.ingest.formats.alerts import decode_alerts
from stream.models import Alert, Asset, DecodeError


def decode(document: Any, resolver: EntityResolver | None = None) -> list[Alert]:
    return decode_alerts(orjson.dumps(document), resolver or EntityResolver())


def eventbridge(finding: dict[str, Any]) -> dict[str, Any]:
    return {"version": "0", "id": "c8c4daa7-a20c-2f03-0070-b7393dd542ad", "detail-type": "GuardDuty Finding",
            "source": "aws.guardduty", "account": finding["accountId"], "time": "2022-01-13T00:00:47Z",
            "region": finding["region"], "resources": [], "detail": finding}


# --- GuardDuty ----------------------------------------------------------------------------------

GUARDDUTY_EXPECTED = {
    # sample: (rule, entity, subject, observed_at)
    "detail_guardduty_ec2_event.json": (
        "Canary:EC2/Stateless.IntegTest", "arn:aws:ec2:us-east-1:123456789012:instance/i-05746eb48123455e0",
        "i-05746eb48123455e0", datetime(2017, 10, 31, 23, 16, 23, tzinfo=UTC)),
    "detail_guardduty_iam_event.json": (
        "Recon:IAMUser/MaliciousIPCaller.Custom", "arn:aws:iam::123456789012:user/GeneratedFindingUserName",
        "GeneratedFindingUserName", datetime(2022, 1, 13, 0, 0, 47, tzinfo=UTC)),
    "detail_guardduty_s3_event.json": (
        "PenTest:S3/ParrotLinux", "arn:aws:s3:::bucketName", "bucketName", datetime(2022, 1, 13, 0, 0, 47, tzinfo=UTC)),
}


@needs_samples
@pytest.mark.parametrize("name", sorted(GUARDDUTY_EXPECTED))
def test_guardduty_sample_resolves_its_resource_bare_and_in_eventbridge(name):
    raw = guardduty(name)
    rule, entity, subject, observed_at = GUARDDUTY_EXPECTED[name]

    [bare] = decode(raw)
    [wrapped] = decode(eventbridge(raw))

    assert bare == wrapped
    assert bare.source == "guardduty"
    assert bare.uid == raw["arn"]
    assert bare.rule == rule
    assert bare.severity == "medium"  # severity 5 in every sample
    assert bare.entities == [entity]
    assert bare.subject == subject
    assert bare.observed_at == observed_at  # service.eventLastSeen


@pytest.mark.parametrize(("severity", "band"), [
    (0.5, "informational"), (1.0, "low"), (3.9, "low"), (4, "medium"), (6.9, "medium"),
    (7.0, "high"), (8.9, "high"), (9.0, "critical"), (10, "critical"),
])
@needs_samples
def test_guardduty_severity_bands(severity, band):
    raw = guardduty("detail_guardduty_ec2_event.json")
    raw["severity"] = severity
    assert decode(raw)[0].severity == band


@needs_samples
@pytest.mark.parametrize(("severity", "reason"), [(11, "outside GuardDuty's 0-10 scale"), ("8", "must be a number")])
def test_guardduty_severity_off_the_scale_is_refused(severity, reason):
    raw = guardduty("detail_guardduty_ec2_event.json")
    raw["severity"] = severity
    with pytest.raises(DecodeError, match=reason):
        decode(raw)


@needs_samples
@pytest.mark.parametrize(("user_type", "entity"), [
    ("AssumedRole", "arn:aws:iam::123456789012:role/GeneratedFindingUserName"),
    ("Root", "arn:aws:iam::123456789012:root"),
    ("AWSService", "AWS::IAM::AccessKey/GeneratedFindingAccessKeyId"),
])
def test_guardduty_access_key_resolves_to_the_identity_behind_it(user_type, entity):
    raw = guardduty("detail_guardduty_iam_event.json")
    raw["resource"]["accessKeyDetails"]["userType"] = user_type
    assert decode(raw)[0].entities == [entity]


def test_guardduty_eks_finding_names_the_cluster_and_the_pod():
    [alert] = decode(eks_finding())
    assert alert.entities == ["arn:aws:eks:eu-west-1:111122223333:cluster/prod", f"k8s:pod/payments/{POD}"]
    assert alert.subject == POD
    assert alert.severity == "high"


def test_guardduty_eks_pod_of_a_known_service_resolves_to_the_service():
    resolver = EntityResolver()
    resolver.learn_pod(POD, "service:payments-api")
    assert decode(eks_finding(), resolver)[0].entities[-1] == "service:payments-api"


def test_guardduty_resource_type_it_cannot_place_is_refused_by_name():
    finding = eks_finding()
    finding["resource"]["resourceType"] = "EC2NetworkInterface"
    with pytest.raises(DecodeError, match="'EC2NetworkInterface' is not supported"):
        decode(finding)


# --- Falco --------------------------------------------------------------------------------------


def test_falco_event_on_an_unknown_pod_concerns_the_pod():
    [alert] = decode(falco_event())
    assert alert.source == "falco"
    assert alert.rule == "Terminal shell in container"
    assert alert.severity == "low"  # Notice
    assert alert.entities == [f"k8s:pod/payments/{POD}"]
    assert alert.subject == POD
    assert alert.observed_at == datetime(2026, 3, 2, 10, 22, 31, 512358, tzinfo=UTC)  # nanoseconds, cut to micro


def test_falco_pod_resolves_to_the_service_traces_taught_or_the_asset_alias():
    learned = EntityResolver()
    learned.learn_pod(POD, "service:payments-api")
    aliased = EntityResolver()
    aliased.add_asset(Asset(id="service:payments", aliases=["payments-api"]))  # the deployment's name
    assert decode(falco_event(), learned)[0].entities == ["service:payments-api"]
    assert decode(falco_event(), aliased)[0].entities == ["service:payments"]


def test_falcosidekick_uuid_is_the_uid_and_a_raw_event_gets_a_stable_one():
    sidekick = decode(falco_event(uuid="0d4a1c7e-8f6b-4b3a-9c2e-5a7d6e1f2b3c"))[0]
    raw_once, raw_again = decode(falco_event())[0], decode(falco_event())[0]
    other = decode(falco_event(output="another shell"))[0]
    assert sidekick.uid == "0d4a1c7e-8f6b-4b3a-9c2e-5a7d6e1f2b3c"
    assert raw_once.uid == raw_again.uid
    assert raw_once.uid != other.uid


@pytest.mark.parametrize(("priority", "severity"), [
    ("Emergency", "critical"), ("Alert", "critical"), ("Critical", "critical"), ("Error", "high"),
    ("Warning", "medium"), ("Notice", "low"), ("Informational", "low"), ("Debug", "informational"),
])
def test_falco_priorities_map_to_severities(priority, severity):
    assert decode(falco_event(priority=priority))[0].severity == severity


def test_falco_host_event_concerns_the_host_or_the_asset_that_claims_it():
    fields = {"proc.cmdline": "sshd -D", "k8s.pod.name": None, "k8s.ns.name": None}
    resolver = EntityResolver()
    resolver.add_asset(Asset(id="arn:aws:ec2:eu-west-1:111122223333:instance/i-0bastion", aliases=["bastion-1"]))
    assert decode(falco_event(output_fields=fields))[0].entities == ["host:ip-10-0-3-17"]
    assert decode(falco_event(output_fields=fields, hostname="bastion-1"), resolver)[0].entities == [
        "arn:aws:ec2:eu-west-1:111122223333:instance/i-0bastion"]


def test_falco_connection_to_an_aliased_server_concerns_it_too():
    resolver = EntityResolver()
    resolver.add_asset(Asset(id="arn:aws:rds:eu-west-1:111122223333:db:ledger", aliases=["10.0.8.21"]))
    event = falco_event(rule="Unexpected outbound connection", priority="Warning")
    event["output_fields"]["fd.sip"] = "10.0.8.21"
    assert decode(event, resolver)[0].entities == [
        f"k8s:pod/payments/{POD}", "arn:aws:rds:eu-west-1:111122223333:db:ledger"]


@pytest.mark.parametrize(("changes", "reason"), [
    ({"priority": "Loud"}, "unknown priority"),
    ({"time": None}, "missing field 'time'"),
    ({"time": "yesterday"}, "observed_at"),
    ({"output_fields": ["k8s.pod.name"]}, "output_fields must be a JSON object"),
    ({"hostname": None, "output_fields": {}}, "neither a pod"),
])
def test_broken_falco_event_is_refused_with_a_reason(changes, reason):
    with pytest.raises(DecodeError, match=reason):
        decode(falco_event(**changes))


def test_a_batch_of_alerts_decodes_every_one_and_names_a_bad_one():
    assert len(decode([falco_event(), eks_finding()])) == 2
    with pytest.raises(DecodeError, match=r"^\[1\]: unknown alert format"):
        decode([falco_event(), {"hello": "world"}])
