"""``hotpath aws pull-findings`` and ``sync-assets`` against moto in server mode and the real broker.

moto runs as a real HTTP server on 127.0.0.1 (``ThreadedMotoServer``); the commands and the tests talk
to it with plain boto3 (``--endpoint-url``), and what the commands publish is read back from Kafka.
moto's GetFindings ignores ``Filters``, so the cursor tests here exercise the client-side cursor
alone (real Security Hub also filters ``UpdatedAt`` on the server). moto has no AWS Config
compliance APIs: the Config pull is covered by the pure tests in test_aws_logic.py, and its 500 here is
the source that fails while the rest is pulled.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from paths import ROOT, SAMPLES

from stream.commands.aws import pull_findings, sync_assets
from stream.commands.main import build_parser
from stream.ingest.formats.assets import load_asset_file
from stream.ingest.formats.findings import decode_findings
from stream.models import Asset
from stream.settings import load_settings
from stream.sources.aws.cursor import cursor_topic

pytestmark = pytest.mark.aws

ACCOUNT = "123456789012"  # moto's account for its default credentials
REGION = "us-east-1"
FSBP_STANDARD = "standards/aws-foundational-security-best-practices/v/1.0.0"


# --- moto server --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def moto_api(url: str, path: str, body: bytes = b"") -> None:
    request = urllib.request.Request(f"{url}/moto-api/{path}", data=body, method="POST",
                                     headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION}


@dataclass
class Aws:
    """The moto server, reached with plain boto3 clients and the ``hotpath aws`` commands."""

    url: str

    def client(self, service: str, region: str = REGION, **credentials: str):
        return boto3.client(service, endpoint_url=self.url, region_name=region, **credentials)

    def args(self, *argv: str):
        return build_parser().parse_args(["aws", *argv, "--endpoint-url", self.url])

    def assume(self, account: str) -> dict[str, str]:
        """Credentials of a role in ``account``: moto files what they create under that account."""
        credentials = self.client("sts").assume_role(
            RoleArn=role_arn(account), RoleSessionName="test", ExternalId="hotpath-test")["Credentials"]
        return {"aws_access_key_id": credentials["AccessKeyId"],
                "aws_secret_access_key": credentials["SecretAccessKey"],
                "aws_session_token": credentials["SessionToken"]}


@pytest.fixture
def aws(moto_url: str, monkeypatch) -> Aws:
    """An empty moto account and dummy credentials in the standard chain (nothing from ~/.aws)."""
    moto_api(moto_url, "reset")
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION", "HOTPATH_AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    return Aws(moto_url)


def role_arn(account: str) -> str:
    return f"arn:aws:iam::{account}:role/hotpath-reader"


# --- Security Hub findings, built field for field from the ASFF reference ------------------------


def asff_finding(number: int, updated_at: str, *, account: str = ACCOUNT, region: str = REGION,
                 status: str = "FAILED", workflow: str = "NEW") -> dict[str, Any]:
    """An AWS Foundational Security Best Practices S3.8 finding as Security Hub writes it."""
    bucket = f"pay-ledger-exports-{number}"
    generator = "aws-foundational-security-best-practices/v/1.0.0/S3.8"
    return {
        "SchemaVersion": "2018-10-08",
        "Id": f"arn:aws:securityhub:{region}:{account}:subscription/{generator}/finding/"
              f"{uuid.uuid5(uuid.NAMESPACE_URL, f'{account}/{region}/{number}')}",
        "ProductArn": f"arn:aws:securityhub:{region}::product/aws/securityhub",
        "ProductName": "Security Hub",
        "CompanyName": "AWS",
        "Region": region,
        "GeneratorId": generator,
        "AwsAccountId": account,
        "Types": ["Software and Configuration Checks/Industry and Regulatory Standards/"
                  "AWS-Foundational-Security-Best-Practices"],
        "FirstObservedAt": "2025-03-01T08:00:00.000Z",
        "LastObservedAt": updated_at,
        "CreatedAt": "2025-03-01T08:00:00.000Z",
        "UpdatedAt": updated_at,
        "Severity": {"Label": "HIGH", "Normalized": 70, "Original": "HIGH"},
        "Title": "S3.8 S3 general purpose buckets should block public access",
        "Description": "This control checks whether an S3 general purpose bucket blocks public access at the "
                       "bucket level.",
        "Remediation": {"Recommendation": {
            "Text": "For information on how to correct this issue, consult the AWS Security Hub controls "
                    "documentation.",
            "Url": "https://docs.aws.amazon.com/console/securityhub/S3.8/remediation"}},
        "ProductFields": {"StandardsArn": f"arn:aws:securityhub:::{FSBP_STANDARD}",
                          "ControlId": "S3.8", "aws/securityhub/ProductName": "Security Hub",
                          "aws/securityhub/CompanyName": "AWS"},
        "Resources": [{"Type": "AwsS3Bucket", "Id": f"arn:aws:s3:::{bucket}", "Partition": "aws", "Region": region,
                       "Details": {"AwsS3Bucket": {"OwnerId": "f1ca9e6e4a2d",
                                                   "CreatedAt": "2025-02-11T10:20:31.000Z"}}}],
        "Compliance": {"Status": status, "SecurityControlId": "S3.8",
                       "AssociatedStandards": [{"StandardsId": FSBP_STANDARD}]},
        "WorkflowState": "NEW",
        "Workflow": {"Status": workflow},
        "RecordState": "ACTIVE",
        "FindingProviderFields": {"Severity": {"Label": "HIGH", "Original": "HIGH"},
                                  "Types": ["Software and Configuration Checks/Industry and Regulatory Standards/"
                                            "AWS-Foundational-Security-Best-Practices"]},
    }


def import_findings(aws: Aws, findings: list[dict[str, Any]], region: str = REGION, **credentials: str) -> None:
    hub = aws.client("securityhub", region, **credentials)
    hub.enable_security_hub()
    assert hub.batch_import_findings(Findings=findings)["SuccessCount"] == len(findings)


# --- Kafka --------------------------------------------------------------------------------------


def topic_records(bootstrap: str, topic: str) -> list[tuple[str, Any]]:
    """Every record on ``topic`` as (key, parsed value), partition by partition."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4().hex}",
                         "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        ends = {p: end for p, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        records: list[tuple[str, Any]] = []
        deadline = time.monotonic() + 30
        while ends and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            records.append((message.key().decode(), orjson.loads(message.value())))
            if message.offset() + 1 >= ends[message.partition()]:
                del ends[message.partition()]
        assert not ends, f"could not read {topic} to its end"
        return records
    finally:
        consumer.close()


def pull(aws: Aws, settings, *argv: str) -> int:
    return pull_findings.run(aws.args("pull-findings", "--once", "--source", "securityhub", *argv), settings)


# --- pull-findings ------------------------------------------------------------------------------


def test_pull_publishes_each_finding_once_unchanged_and_later_only_what_changed(aws, hotpath_settings, capsys):
    first = [asff_finding(n, "2025-03-01T09:00:00.000Z") for n in range(5)]  # one scan: one UpdatedAt
    import_findings(aws, first)

    assert pull(aws, hotpath_settings, "--regions", REGION, "--page-size", "2") == 0
    published = topic_records(hotpath_settings.bootstrap_servers, hotpath_settings.topic_findings)
    assert sorted(published, key=lambda r: r[0]) == sorted(((f["Id"], f) for f in first), key=lambda r: r[0])
    assert f"securityhub {ACCOUNT}/{REGION}: 5 findings, 3 pages" in capsys.readouterr().err

    assert pull(aws, hotpath_settings, "--regions", REGION, "--page-size", "2") == 0
    assert len(topic_records(hotpath_settings.bootstrap_servers, hotpath_settings.topic_findings)) == 5
    assert f"securityhub {ACCOUNT}/{REGION}: published 0 new" in capsys.readouterr().err

    same_instant = asff_finding(5, "2025-03-01T09:00:00.000Z")  # imported late with the scan's timestamp
    later = asff_finding(6, "2025-03-01T10:15:42.517Z")
    fixed = asff_finding(0, "2025-03-01T10:15:42.517Z", status="PASSED", workflow="RESOLVED")
    import_findings(aws, [same_instant, later, fixed])

    assert pull(aws, hotpath_settings, "--regions", REGION, "--page-size", "2") == 0
    published = topic_records(hotpath_settings.bootstrap_servers, hotpath_settings.topic_findings)
    assert len(published) == 8
    new = {key: value for key, value in published if value["UpdatedAt"] != "2025-03-01T09:00:00.000Z"
           or key == same_instant["Id"]}
    assert new == {same_instant["Id"]: same_instant, later["Id"]: later, fixed["Id"]: fixed}
    assert f"securityhub {ACCOUNT}/{REGION}: published 3 new, cursor 2025-03-01T10:15:42.517000Z" \
        in capsys.readouterr().err


def test_hotpath_reads_what_the_pull_publishes(aws, hotpath_settings):
    finding = asff_finding(1, "2025-03-01T09:00:00.000Z")
    import_findings(aws, [finding])
    assert pull(aws, hotpath_settings, "--regions", REGION) == 0

    ((key, value),) = topic_records(hotpath_settings.bootstrap_servers, hotpath_settings.topic_findings)
    assert key == finding["Id"]
    (decoded,) = decode_findings(orjson.dumps(value))
    assert (decoded.source, decoded.status, decoded.severity) == ("securityhub", "open", "high")
    assert decoded.resources == ["arn:aws:s3:::pay-ledger-exports-1"]


def test_a_failed_delivery_leaves_the_cursor_so_the_next_pull_publishes_everything(aws, hotpath_settings, capsys):
    findings = [asff_finding(n, "2025-03-01T09:00:00.000Z") for n in range(3)]
    import_findings(aws, findings)
    unwritable = hotpath_settings.model_copy(update={"topic_findings": "no spaces allowed in topic names"})

    assert pull(aws, unwritable, "--regions", REGION) == 1
    assert "3 records to no spaces allowed in topic names failed" in capsys.readouterr().err

    assert pull(aws, hotpath_settings, "--regions", REGION) == 0
    assert len(topic_records(hotpath_settings.bootstrap_servers, hotpath_settings.topic_findings)) == 3


def test_pull_reads_every_account_through_its_role_in_every_region(aws, hotpath_settings):
    accounts = ("111111111111", "222222222222")
    imported = {}
    for account in accounts:
        credentials = aws.assume(account)
        for region in ("us-east-1", "eu-west-1"):
            batch = [asff_finding(n, "2025-03-01T09:00:00.000Z", account=account, region=region) for n in range(2)]
            import_findings(aws, batch, region, **credentials)
            imported.update((f["Id"], f) for f in batch)
    argv = ["--regions", "us-east-1,eu-west-1", "--role-arn", role_arn(accounts[0]), "--role-arn",
            role_arn(accounts[1]), "--external-id", "hotpath-test"]

    assert pull(aws, hotpath_settings, *argv) == 0
    assert pull(aws, hotpath_settings, *argv) == 0

    published = topic_records(hotpath_settings.bootstrap_servers, hotpath_settings.topic_findings)
    assert len(published) == 8 and dict(published) == imported
    cursors = dict(topic_records(hotpath_settings.bootstrap_servers, cursor_topic(hotpath_settings)))
    assert set(cursors) == {f"securityhub/{a}/{r}" for a in accounts for r in ("us-east-1", "eu-west-1")}
    assert cursors["securityhub/111111111111/eu-west-1"] == {
        "updated_at": "2025-03-01T09:00:00.000000Z",
        "seen_ids_at_cursor": sorted(f["Id"] for f in imported.values()
                                     if f["AwsAccountId"] == "111111111111" and f["Region"] == "eu-west-1"),
    }


@pytest.mark.skipif(not (SAMPLES / "aws-securityhub-asff").is_dir(), reason="real samples (../shared/samples) absent")
def test_real_security_hub_findings_pass_through_unchanged(aws, tmp_path):
    samples = [json.loads(path.read_text()) for path in sorted((SAMPLES / "aws-securityhub-asff").glob("asff_*.json"))]
    import_findings(aws, samples)
    out = tmp_path / "findings.ndjson"

    assert pull_findings.run(aws.args("pull-findings", "--once", "--source", "securityhub", "--regions", REGION,
                                      "--out", str(out)), load_settings()) == 0

    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert sorted(lines, key=lambda f: f["Id"]) == sorted(samples, key=lambda f: f["Id"])


def run_cli(aws: Aws, *argv: str, **popen: Any) -> subprocess.Popen:
    env = {**os.environ, **CREDENTIALS, "HOTPATH_AWS_ENDPOINT_URL": aws.url}
    return subprocess.Popen([sys.executable, "-m", "stream.commands.main", "aws", *argv], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def test_the_command_writes_ndjson_and_keeps_its_cursor_beside_the_file(aws, tmp_path):
    out = tmp_path / "pulls" / "findings.ndjson"
    first = [asff_finding(n, "2025-03-01T09:00:00.000Z") for n in range(3)]
    import_findings(aws, first)
    argv = ("pull-findings", "--once", "--source", "securityhub", "--regions", REGION, "--out", str(out))

    for _ in range(2):
        done = run_cli(aws, *argv)
        _, err = done.communicate(timeout=120)
        assert done.returncode == 0, err
    later = asff_finding(9, "2025-03-02T07:00:00.000Z")
    import_findings(aws, [later])
    _, err = run_cli(aws, *argv).communicate(timeout=120)

    assert [orjson.loads(line) for line in out.read_bytes().splitlines()] == [*first, later]
    cursor = json.loads((out.parent / "findings.ndjson.cursor.json").read_text())
    assert cursor == {f"securityhub/{ACCOUNT}/{REGION}": {"updated_at": "2025-03-02T07:00:00.000000Z",
                                                          "seen_ids_at_cursor": [later["Id"]]}}


def test_without_once_the_command_keeps_polling_until_terminated(aws, tmp_path):
    out = tmp_path / "findings.ndjson"
    import_findings(aws, [asff_finding(1, "2025-03-01T09:00:00.000Z")])
    poller = run_cli(aws, "pull-findings", "--source", "securityhub", "--regions", REGION, "--interval", "0.2",
                     "--out", str(out))
    try:
        wait_for_lines(out, 1)
        import_findings(aws, [asff_finding(2, "2025-03-01T09:30:00.000Z")])
        wait_for_lines(out, 2)
        poller.send_signal(signal.SIGTERM)
        assert poller.wait(timeout=30) == 0
    finally:
        poller.kill()
        poller.communicate()
    assert len(out.read_bytes().splitlines()) == 2


def wait_for_lines(path: Path, count: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_bytes().splitlines()) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"{path} did not reach {count} lines within {timeout_s:.0f}s")


def test_a_finding_dated_2100_does_not_stop_later_pulls(aws, tmp_path):
    out = tmp_path / "findings.ndjson"
    forged, older = asff_finding(1, "2100-01-01T00:00:00.000Z"), asff_finding(2, "2025-03-01T09:00:00.000Z")
    import_findings(aws, [forged, older])
    argv = ("pull-findings", "--once", "--source", "securityhub", "--regions", REGION, "--out", str(out))
    assert pull_findings.run(aws.args(*argv), load_settings()) == 0
    cursors = json.loads((tmp_path / "findings.ndjson.cursor.json").read_text())
    assert datetime.fromisoformat(cursors[f"securityhub/{ACCOUNT}/{REGION}"]["updated_at"]) <= datetime.now(UTC)

    fixed = asff_finding(3, datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"))
    import_findings(aws, [fixed])
    assert pull_findings.run(aws.args(*argv), load_settings()) == 0

    pulled = [orjson.loads(line)["Id"] for line in out.read_bytes().splitlines()]
    assert pulled.count(fixed["Id"]) == 1


def test_a_source_that_fails_is_reported_and_the_rest_is_pulled(aws, hotpath_settings, capsys):
    """moto has no AWS Config compliance APIs (a 500): Security Hub is pulled and the pass succeeds."""
    findings = [asff_finding(n, "2025-03-01T09:00:00.000Z") for n in range(2)]
    import_findings(aws, findings)

    assert pull_findings.run(aws.args("pull-findings", "--once", "--regions", REGION), hotpath_settings) == 0

    published = topic_records(hotpath_settings.bootstrap_servers, hotpath_settings.topic_findings)
    assert sorted(key for key, _ in published) == sorted(f["Id"] for f in findings)
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("hotpath: ")]
    assert errors[0].startswith(
        f"hotpath: config:DescribeComplianceByConfigRule failed in {ACCOUNT}/{REGION}: 500"), errors
    assert errors[1:] == ["hotpath: 1 of 2 parts of the pass failed; they are tried again next pass"]


def test_an_account_whose_role_cannot_be_assumed_is_reported_and_the_others_are_pulled(
        aws, tmp_path, monkeypatch, capsys):
    reachable, closed = "111111111111", "222222222222"
    in_reachable = aws.assume(reachable)
    import_findings(aws, [asff_finding(1, "2025-03-01T09:00:00.000Z", account=reachable)], **in_reachable)
    reader = aws.client("iam", **in_reachable)  # the role the pull assumes, allowed to read findings
    reader.create_role(RoleName="hotpath-reader", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                       "Action": "sts:AssumeRole"}]}))
    reader.put_role_policy(RoleName="hotpath-reader", PolicyName="findings", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "securityhub:GetFindings", "Resource": "*"}]}))
    iam = aws.client("iam")
    iam.create_user(UserName="hotpath-puller")
    iam.put_user_policy(UserName="hotpath-puller", PolicyName="one-account", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sts:GetCallerIdentity", "Resource": "*"},
                      {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": role_arn(reachable)}]}))
    key = iam.create_access_key(UserName="hotpath-puller")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    out = tmp_path / "findings.ndjson"
    argv = ["--regions", REGION, "--role-arn", role_arn(closed), "--role-arn", role_arn(reachable),
            "--external-id", "hotpath-test", "--out", str(out)]
    moto_api(aws.url, "reset-auth", b"0")  # moto checks IAM policies from now on
    try:
        assert pull(aws, load_settings(), *argv) == 0
    finally:
        moto_api(aws.url, "reset-auth", b"inf")

    assert [orjson.loads(line)["AwsAccountId"] for line in out.read_bytes().splitlines()] == [reachable]
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("hotpath: ")]
    assert errors[0].startswith("hotpath: access denied: the credentials lack sts:AssumeRole"), errors
    assert role_arn(closed) in errors[0]


def test_access_denied_names_the_missing_permission_and_publishes_nothing(aws, tmp_path, monkeypatch, capsys):
    import_findings(aws, [asff_finding(1, "2025-03-01T09:00:00.000Z")])
    iam = aws.client("iam")
    iam.create_user(UserName="hotpath-reader")
    iam.put_user_policy(UserName="hotpath-reader", PolicyName="identity-only", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sts:GetCallerIdentity", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="hotpath-reader")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    out = tmp_path / "findings.ndjson"
    moto_api(aws.url, "reset-auth", b"0")  # moto checks IAM policies from now on
    try:
        assert pull(aws, load_settings(), "--regions", REGION, "--out", str(out)) == 1
        assert sync_assets.run(aws.args("sync-assets", "--regions", REGION, "--out", str(tmp_path / "a.json")),
                               load_settings()) == 1
    finally:
        moto_api(aws.url, "reset-auth", b"inf")

    assert capsys.readouterr().err.splitlines() == [
        f"hotpath: access denied: the credentials lack securityhub:GetFindings in {ACCOUNT}/{REGION}",
        f"hotpath: access denied: the credentials lack tag:GetResources in {ACCOUNT}/{REGION}",
        f"hotpath: not writing {tmp_path / 'a.json'}: it would lack the assets of {ACCOUNT}",
    ]
    assert out.read_bytes() == b"" and not (tmp_path / "findings.ndjson.cursor.json").exists()
    assert not (tmp_path / "a.json").exists()


# --- sync-assets --------------------------------------------------------------------------------


@dataclass
class Estate:
    """What the asset test creates in moto, with the ids AWS assigned."""

    bucket: str
    database: str
    database_address: str
    web_group: str
    instance: str
    queue_url: str
    table: str
    balancer: str
    balancer_dns: str
    role: str


def tags(**pairs: str) -> list[dict[str, str]]:
    return [{"Key": key.replace("__", ":").replace("_", "-"), "Value": value} for key, value in pairs.items()]


def build_estate(aws: Aws) -> Estate:
    """A small payments workload: a bucket, a database, an API on EC2 behind an ALB, a queue, a table."""
    s3 = aws.client("s3")
    s3.create_bucket(Bucket="pay-ledger-exports")
    s3.put_bucket_tagging(Bucket="pay-ledger-exports", Tagging={"TagSet": tags(
        criticality="critical", data_classification="pci", owner="team-ledger")})
    db = aws.client("rds").create_db_instance(
        DBInstanceIdentifier="ledger", Engine="postgres", DBInstanceClass="db.t3.micro", AllocatedStorage=20,
        MasterUsername="ledger", MasterUserPassword="not-a-real-password",
        Tags=tags(hotpath__service="ledger-db", criticality="high", owner="team-ledger"))["DBInstance"]
    ec2 = aws.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{n}.0/24", AvailabilityZone=f"{REGION}{zone}")
               ["Subnet"]["SubnetId"] for n, zone in ((1, "a"), (2, "b"))]
    web = ec2.create_security_group(GroupName="payments-web", Description="payments API", VpcId=vpc,
                                    TagSpecifications=[{"ResourceType": "security-group",
                                                        "Tags": tags(environment="prod")}])["GroupId"]
    iam = aws.client("iam")
    role = iam.create_role(RoleName="payments-api", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                                                "Action": "sts:AssumeRole"}]}),
        Tags=tags(hotpath__service="payments-api"))["Role"]["Arn"]
    iam.create_instance_profile(InstanceProfileName="payments-api")
    iam.add_role_to_instance_profile(InstanceProfileName="payments-api", RoleName="payments-api")
    instance = ec2.run_instances(
        ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="t3.small", SubnetId=subnets[0],
        SecurityGroupIds=[web], IamInstanceProfile={"Name": "payments-api"},
        TagSpecifications=[{"ResourceType": "instance", "Tags": tags(hotpath__service="payments-api")}],
    )["Instances"][0]["InstanceId"]
    queue_url = aws.client("sqs").create_queue(QueueName="payment-events", tags={"owner": "team-payments"})["QueueUrl"]
    aws.client("dynamodb").create_table(
        TableName="payment-sessions", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "session", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "session", "AttributeType": "S"}],
        Tags=tags(data_classification="pii"))
    balancer = aws.client("elbv2").create_load_balancer(
        Name="payments-edge", Subnets=subnets, SecurityGroups=[web], Scheme="internet-facing", Type="application",
        Tags=tags(hotpath__service="edge-gateway"))["LoadBalancers"][0]
    return Estate(
        bucket="arn:aws:s3:::pay-ledger-exports", database=db["DBInstanceArn"],
        database_address=db["Endpoint"]["Address"],
        web_group=f"arn:aws:ec2:{REGION}:{ACCOUNT}:security-group/{web}",
        instance=f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{instance}", queue_url=queue_url,
        table=f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/payment-sessions",
        balancer=balancer["LoadBalancerArn"], balancer_dns=balancer["DNSName"], role=role,
    )


def check_estate_assets(estate: Estate, assets: dict[str, Asset]) -> None:
    bucket = assets[estate.bucket]
    assert bucket.aliases == ["pay-ledger-exports"]
    assert (bucket.tags.criticality, bucket.tags.data_classification, bucket.tags.owner) == (
        "critical", "pci", "team-ledger")
    database = assets[estate.database]
    assert database.aliases == [estate.database_address] and database.service == "ledger-db"
    assert (database.tags.criticality, database.tags.owner) == ("high", "team-ledger")
    web = assets[estate.web_group]
    assert set(web.exercised_via) >= {estate.instance, "service:payments-api", estate.balancer,
                                      "service:edge-gateway"}
    assert web.tags.environment == "prod"
    role = assets[estate.role]
    assert role.exercised_via == [estate.instance, "service:payments-api"]
    queue = assets[f"arn:aws:sqs:{REGION}:{ACCOUNT}:payment-events"]
    assert queue.aliases == sorted([estate.queue_url, "payment-events"]) and queue.tags.owner == "team-payments"
    table = assets[estate.table]
    assert table.aliases == ["payment-sessions"] and table.tags.data_classification == "pii"
    balancer = assets[estate.balancer]
    assert balancer.aliases == [estate.balancer_dns] and balancer.tags.internet_facing is True
    assert balancer.service == "edge-gateway"


def test_sync_assets_publishes_the_context_traces_need_and_later_only_changes(aws, hotpath_settings, capsys):
    estate = build_estate(aws)
    topic = hotpath_settings.topic_assets

    assert sync_assets.run(aws.args("sync-assets", "--regions", REGION), hotpath_settings) == 0
    records = topic_records(hotpath_settings.bootstrap_servers, topic)
    assets = {key: Asset.model_validate(value) for key, value in records}
    assert all(key == value["id"] for key, value in records) and len(assets) == len(records)
    check_estate_assets(estate, assets)
    err = capsys.readouterr().err
    assert f"assets {ACCOUNT}/{REGION}: tagged resources 7, databases 1, tables 1, queues 1, load balancers 1" in err

    assert sync_assets.run(aws.args("sync-assets", "--regions", REGION), hotpath_settings) == 0
    assert len(topic_records(hotpath_settings.bootstrap_servers, topic)) == len(records)
    assert f"assets: published 0 changed of {len(assets)}" in capsys.readouterr().err

    aws.client("s3").put_bucket_tagging(Bucket="pay-ledger-exports", Tagging={"TagSet": tags(
        criticality="high", data_classification="pci", owner="team-ledger")})
    assert sync_assets.run(aws.args("sync-assets", "--regions", REGION), hotpath_settings) == 0
    after = topic_records(hotpath_settings.bootstrap_servers, topic)
    (changed,) = [record for record in after if record not in records]
    assert len(after) == len(records) + 1
    assert changed[0] == estate.bucket and changed[1]["tags"]["criticality"] == "high"


def test_sync_assets_writes_an_asset_file_hotpath_loads(aws, tmp_path):
    estate = build_estate(aws)
    out = tmp_path / "assets.json"

    assert sync_assets.run(aws.args("sync-assets", "--regions", REGION, "--out", str(out)), load_settings()) == 0

    check_estate_assets(estate, {asset.id: asset for asset in load_asset_file(out)})
