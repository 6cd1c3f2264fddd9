"""`hotpath policy explain` and replay's --audit-out and --compliance-out, on the demo's day of data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from policy_events import policy_file

from stream.commands.main import main
from stream.demo.scenario import build_scenario
from stream.policy.document import load_policy

LEDGER_DB = "arn:aws:rds:us-east-1:482916305771:db:ledger-prod"
LEDGER_FINDING = "prowler-aws-rds_instance_storage_encrypted-482916305771-us-east-1-ledger-prod"
STATEMENTS_FINDING = "prowler-aws-s3_bucket_public_access-482916305771-us-east-1-finpay-prod-statements"
WEBSITE_FINDING = "prowler-aws-s3_bucket_public_access-482916305771-us-east-1-finpay-www"
# Mutes the ledger database's encryption finding, caps the S3 buckets at P3, pages the ledger team's P1s.
POLICY = """\
version: 1
mute:
  - {id: ledger-db-accepted, owner: ledger-team, reason: encryption migration scheduled, ticket: LEDGER-7,
     expires: 2025-12-31, match: {owners: [ledger-team], checks: ["rds_.*"]}}
overrides:
  - {id: buckets-cap, priority_cap: P3, match: {resources: ["arn:aws:s3:::.*"]}}
routes:
  - {id: ledger-pages, priorities: [P1], to: [pagerduty-ledger], match: {owners: [ledger-team]}}
"""


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> list[str]:
    files = build_scenario(seed=11, minutes=4).write_files(tmp_path_factory.mktemp("demo"))
    return [argument for name, paths in files.items() for argument in (f"--{name}", *map(str, paths))]


def test_explain_prints_per_finding_what_the_policy_mutes_caps_and_reroutes(inputs, tmp_path, capsys):
    policy = policy_file(tmp_path, "policy.yaml", POLICY)

    assert main(["policy", "explain", str(policy), *inputs]) == 0

    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert f"{LEDGER_FINDING} on {LEDGER_DB}: muted by ledger-db-accepted (policy.yaml, owner ledger-team, until " \
           f"2025-12-31, ticket LEDGER-7: encryption migration scheduled); routed to pagerduty-ledger" in lines
    assert f"{STATEMENTS_FINDING} on arn:aws:s3:::finpay-prod-statements: priority P1 -> P3" in lines
    routed = [line for line in lines if line.endswith(": routed to pagerduty-ledger")]
    assert len(routed) == 1 and LEDGER_DB in routed[0]  # Security Hub's RDS.2 on the same database: not muted
    assert f"{WEBSITE_FINDING} on arn:aws:s3:::finpay-www: priority P2 -> P3" in lines  # the marketing site's bucket
    assert len(lines) == 5
    assert f"policy version {load_policy([policy]).digest[:12]} changes 5 of 10 escalated findings" in err


def test_explain_with_a_policy_that_changes_nothing_prints_no_finding(inputs, tmp_path, capsys):
    assert main(["policy", "explain", str(policy_file(tmp_path, "empty.yaml", "version: 1\n")), *inputs]) == 0

    out, err = capsys.readouterr()
    assert out == "" and "changes 0 of 10 escalated findings" in err


def test_explain_refuses_a_policy_that_is_not_valid_with_its_line(inputs, tmp_path, capsys):
    bad = policy_file(tmp_path, "bad.yaml", "version: 1\nmute:\n  - id: x\n    match: {}\n")

    assert main(["policy", "explain", str(bad), *inputs]) == 1
    assert capsys.readouterr().err.startswith(f"{bad}:3: mute.0")


def test_replay_writes_the_audit_records_and_the_compliance_view(inputs, tmp_path):
    policy = policy_file(tmp_path, "policy.yaml", POLICY)
    audit, compliance = tmp_path / "audit.ndjson", tmp_path / "compliance.json"

    assert main(["replay", *inputs, "--policy", str(policy), "--out", str(tmp_path / "out.ndjson"),
                 "--audit-out", str(audit), "--compliance-out", str(compliance)]) == 0

    records = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [(r["kind"], r["finding_uid"], r["rule_id"], r["owner"], r["ticket"], r["expires"]) for r in records] == [
        ("suppressed", LEDGER_FINDING, "ledger-db-accepted", "ledger-team", "LEDGER-7", "2025-12-31")]
    assert records[0]["policy_version"] == load_policy([policy]).digest
    assert isinstance(json.loads(compliance.read_text()), dict)


def test_replay_without_a_policy_writes_an_empty_audit_trail(inputs, tmp_path: Path):
    audit = tmp_path / "audit.ndjson"

    assert main(["replay", *inputs, "--out", str(tmp_path / "out.ndjson"), "--audit-out", str(audit)]) == 0

    assert audit.read_text() == ""
