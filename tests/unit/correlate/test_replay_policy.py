"""``hotpath replay --policy``: the demo's day judged by a Prowler mutelist or by hotpath's own policy file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stream.commands.main import main
from stream.demo.scenario import build_scenario
from stream.policy.document import load_policy

STATEMENTS = "arn:aws:s3:::finpay-prod-statements"
LEDGER_DB = "arn:aws:rds:us-east-1:482916305771:db:ledger-prod"
MUTELIST = """\
Mutelist:
  Accounts:
    "482916305771":
      Checks:
        "s3_bucket_public_*":
          Regions: ["*"]
          Resources: ["finpay-prod-statements"]
          Description: statements are public through the CDN by design
"""
# The demo's data is from 2025-06-03: a mute until the end of 2025 applies to it (replay judges by event
# time), though the wall clock is long past that day; one that ended the day before does not.
POLICY = f"""\
version: 1
mute:
  - id: ledger-db-accepted
    owner: ledger-team
    reason: encryption migration scheduled
    ticket: LEDGER-7
    expires: 2025-12-31
    match: {{resources: ["{LEDGER_DB}"], checks: [rds_instance_storage_encrypted]}}
  - id: already-over
    owner: platform-team
    reason: a past exception
    expires: 2025-06-02
    match: {{checks: ["EC2\\\\.18"]}}
overrides:
  - id: prod-cap
    match: {{environments: [prod]}}
    priority_cap: P2
routes:
  - id: identity
    match: {{owners: [identity-team]}}
    to: [opsgenie-identity]
    opsgenie_team: identity
"""


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory) -> dict[str, list[Path]]:
    return build_scenario(seed=11, minutes=4).write_files(tmp_path_factory.mktemp("demo"))


def replay_events(files: dict[str, list[Path]], out: Path, *policy: Path) -> list[dict]:
    argv = ["replay", "--out", str(out)]
    for name, paths in files.items():
        argv += [f"--{name}", *map(str, paths)]
    assert main(argv + (["--policy", *map(str, policy)] if policy else [])) == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


def judged(event: dict) -> dict:
    """The event without what differs between two runs on the same data (the policy, the wall clock)."""
    return {key: value for key, value in event.items() if key not in ("policy_version", "emitted_at")}


def test_a_prowler_mutelist_suppresses_the_finding_it_names_and_nothing_else(demo_files, tmp_path) -> None:
    mutelist = tmp_path / "mutelist.yaml"
    mutelist.write_text(MUTELIST)
    plain = replay_events(demo_files, tmp_path / "plain.ndjson")
    muted = replay_events(demo_files, tmp_path / "muted.ndjson", mutelist)
    suppressed = [e for e in muted if e["state"] == "suppressed"]
    assert [(e["finding"]["check"], e["resource"]) for e in suppressed] == [("s3_bucket_public_access", STATEMENTS)]
    assert suppressed[0]["suppressed_by"]["owner"] == "mutelist.yaml"
    assert suppressed[0]["suppressed_by"]["reason"] == "statements are public through the CDN by design"
    assert {e["policy_version"] for e in muted} == {load_policy([mutelist]).digest}
    others = [judged(e) for e in muted if e is not suppressed[0]]
    assert others == [judged(e) for e in plain
                      if (e["finding"]["check"], e["resource"]) != ("s3_bucket_public_access", STATEMENTS)]


def test_a_hotpath_policy_mutes_caps_and_routes_by_the_time_of_the_data(demo_files, tmp_path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    events = replay_events(demo_files, tmp_path / "out.ndjson", path)
    ledger = [e for e in events if e["finding"]["check"] == "rds_instance_storage_encrypted"]
    assert [e["state"] for e in ledger] == ["suppressed"]
    assert ledger[0]["suppressed_by"]["rule_id"] == "ledger-db-accepted"
    security_group = {e["state"] for e in events if e["finding"]["check"] == "EC2.18"}
    assert security_group and security_group <= {"escalated", "updated"}  # its mute ended before the data
    assert {e["priority"] for e in events} <= {"P2", "P3"}
    assert any("priority capped at P2 by rule prod-cap" in e["reasons"] for e in events)
    kyc = [e for e in events if e["asset"]["owner"] == "identity-team"]
    assert kyc and all(e["routing"] == {"sinks": ["opsgenie-identity"], "opsgenie_team": "identity"} for e in kyc)
    assert all("routing" not in e for e in events if e["asset"]["owner"] != "identity-team")


def test_a_bad_policy_file_stops_replay_with_one_line_per_problem(demo_files, tmp_path, capsys) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("version: 1\nmute:\n  - id: x\n    owner: me\n    reason: r\n    expires: someday\n"
                    "    match: {checks: ['(']}\n")
    assert main(["replay", "--findings", *map(str, demo_files["findings"]), "--policy", str(path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"hotpath: configuration error: {path}:6: mute.0.expires")
    assert lines[1].startswith(f"{path}:7: mute.0.match.checks.0")
