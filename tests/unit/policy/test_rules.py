"""One decision per finding: mutes that expire and that an attack breaks through, priority floors and
caps, severity overrides, routes to sinks; Prowler mutelists and hotpath policies on the same path."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stream.policy.document import PolicyFileError, load_policy
from stream.policy.rules import FindingFacts, Policy

POLICY = """\
version: 1
mute:
  - id: website-bucket
    owner: team-web
    reason: the public website's bucket is public by design
    ticket: SEC-123
    expires: 2026-12-31
    match:
      checks: ["s3_bucket_public_access", "S3\\\\.8"]
      resources: ["s3://www-.*"]
  - id: batch-runner-ssh
    owner: team-batch
    reason: bastion-less batch hosts, isolated subnet
    break_on_attack: false
    match:
      checks: ["ec2_securitygroup_allow_ingress_from_internet_to_tcp_port_22"]
      tags: {role: "batch-.*"}
overrides:
  - id: dev-never-pages
    match: {environments: [dev]}
    priority_cap: P3
  - id: card-data-floor
    match: {tags: {data: pci}}
    priority_floor: P2
  - id: config-rules-are-medium
    match: {checks: ["s3-bucket-.*"]}
    severity: medium
routes:
  - id: payments-urgent
    match: {owners: [payments]}
    priorities: [P1, P2]
    to: [pagerduty-payments]
    opsgenie_team: payments
  - id: prod-to-soc
    match: {environments: [prod]}
    to: [soc-webhook]
"""

BEFORE_EXPIRY = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
AFTER_EXPIRY = datetime(2027, 1, 1, tzinfo=UTC)


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return load_policy([path])


def facts(**given) -> FindingFacts:
    defaults = dict(check="s3_bucket_public_access", resource="s3://www-site", severity="high", priority="P2",
                    account="123456789012", region="eu-west-1")
    return FindingFacts(**{**defaults, **given})


def test_a_mute_applies_through_its_expiry_day_and_the_finding_then_escalates_at_its_priority(policy: Policy) -> None:
    before = policy.decide(facts(), BEFORE_EXPIRY)
    assert before.muted_by is not None and before.muted_by.rule.id == "website-bucket"
    assert (before.muted_by.rule.owner, before.muted_by.rule.ticket, before.muted_by.source) == (
        "team-web", "SEC-123", "policy.yaml")
    after = policy.decide(facts(), AFTER_EXPIRY)
    assert after.muted_by is None
    assert [muting.rule.id for muting in after.expired] == ["website-bucket"]
    assert after.priority == "P2"
    assert policy.next_expiry(datetime(2026, 6, 1, tzinfo=UTC)) == AFTER_EXPIRY
    assert policy.next_expiry(AFTER_EXPIRY) is None


def test_the_security_hub_control_id_is_matched_whole(policy: Policy) -> None:
    assert policy.decide(facts(check="S3.8"), BEFORE_EXPIRY).muted_by is not None
    assert policy.decide(facts(check="S3.81"), BEFORE_EXPIRY).muted_by is None
    assert policy.decide(facts(resource="s3://staging-www-site"), BEFORE_EXPIRY).muted_by is None


def test_an_attack_on_the_muted_resource_breaks_through_by_default(policy: Policy) -> None:
    decision = policy.decide(facts(attacked_directly=True), BEFORE_EXPIRY)
    assert decision.muted_by is None
    assert [muting.rule.id for muting in decision.broken_through] == ["website-bucket"]


def test_a_rule_can_hold_its_mute_under_attack(policy: Policy) -> None:
    ssh = facts(check="ec2_securitygroup_allow_ingress_from_internet_to_tcp_port_22", resource="sg-0abc",
                tags={"role": "batch-nightly"}, attacked_directly=True)
    decision = policy.decide(ssh, BEFORE_EXPIRY)
    assert decision.muted_by is not None and decision.muted_by.rule.id == "batch-runner-ssh"
    assert decision.broken_through == ()
    assert policy.decide(replace(ssh, tags={"role": "web"}), BEFORE_EXPIRY).muted_by is None


def test_nothing_in_dev_pages_above_p3(policy: Policy) -> None:
    for scored in ("P1", "P2", "P3"):
        assert policy.decide(facts(resource="db-1", environment="dev", priority=scored), AFTER_EXPIRY).priority == "P3"
    assert policy.decide(facts(resource="db-1", environment="dev", priority="P5"), AFTER_EXPIRY).priority == "P5"
    assert policy.decide(facts(resource="db-1", environment="prod", priority="P1"), AFTER_EXPIRY).priority == "P1"


def test_a_floor_raises_what_it_matches_and_a_cap_wins_over_it(policy: Policy) -> None:
    card_data = facts(resource="db-1", tags={"data": "pci"}, priority="P4")
    decision = policy.decide(card_data, AFTER_EXPIRY)
    assert (decision.priority, decision.overrides) == ("P2", ("card-data-floor",))
    assert policy.decide(facts(resource="db-1", tags={"data": "pci"}, priority="P1"), AFTER_EXPIRY).priority == "P1"
    in_dev = policy.decide(facts(resource="db-1", tags={"data": "pci"}, environment="dev", priority="P4"),
                           AFTER_EXPIRY)
    assert (in_dev.priority, in_dev.overrides) == ("P3", ("dev-never-pages", "card-data-floor"))


def test_the_decision_says_in_words_what_the_overrides_changed(policy: Policy) -> None:
    capped = policy.decide(facts(resource="db-1", environment="dev", priority="P1"), AFTER_EXPIRY)
    assert capped.notes == ("priority capped at P3 by rule dev-never-pages",)
    in_dev = policy.decide(facts(resource="db-1", tags={"data": "pci"}, environment="dev", priority="P4"),
                           AFTER_EXPIRY)
    assert in_dev.notes == ("priority raised to P2 by rule card-data-floor", "priority capped at P3 by rule "
                                                                             "dev-never-pages")
    already_low = policy.decide(facts(resource="db-1", environment="dev", priority="P4"), AFTER_EXPIRY)
    assert already_low.overrides == ("dev-never-pages",) and already_low.notes == ()
    config_rule = policy.decide(facts(check="s3-bucket-public-read-prohibited", resource="b"), AFTER_EXPIRY)
    assert config_rule.notes == ("severity set to medium (the scanner said high) by rule config-rules-are-medium",)


def test_a_severity_override(policy: Policy) -> None:
    decision = policy.decide(facts(check="s3-bucket-public-read-prohibited", resource="b"), AFTER_EXPIRY)
    assert (decision.severity, decision.overrides) == ("medium", ("config-rules-are-medium",))
    assert policy.decide(facts(resource="b"), AFTER_EXPIRY).severity == "high"


def test_routes_by_owner_priority_and_environment(policy: Policy) -> None:
    urgent = policy.decide(facts(resource="db-1", owner="payments", environment="prod", priority="P1"), AFTER_EXPIRY)
    assert urgent.routing is not None
    assert (urgent.routing.sinks, urgent.routing.opsgenie_team) == (("pagerduty-payments", "soc-webhook"), "payments")
    routine = policy.decide(facts(resource="db-1", owner="payments", environment="prod", priority="P4"), AFTER_EXPIRY)
    assert routine.routing is not None and routine.routing.sinks == ("soc-webhook",)
    assert policy.decide(facts(resource="db-1", owner="web", environment="staging"), AFTER_EXPIRY).routing is None


def test_routes_read_the_priority_after_overrides(policy: Policy) -> None:
    capped = policy.decide(facts(resource="db-1", owner="payments", environment="dev", priority="P1"), AFTER_EXPIRY)
    assert capped.priority == "P3"
    assert capped.routing is None


def test_a_prowler_mutelist_mutes_on_the_same_path_owned_by_its_file(tmp_path: Path, policy: Policy) -> None:
    mutelist = tmp_path / "prowler-mutelist.yaml"
    mutelist.write_text('Mutelist:\n  Accounts:\n    "*":\n      Checks:\n        "rds_*":\n'
                        '          Regions: ["*"]\n          Resources: ["reporting"]\n'
                        '          Description: "read replica for BI, no customer data"\n')
    both = load_policy([tmp_path / "policy.yaml", mutelist])
    replica = facts(check="rds_instance_no_public_access", resource="reporting-replica", environment="dev",
                    priority="P1")
    decision = both.decide(replica, AFTER_EXPIRY)
    assert decision.muted_by is not None
    assert (decision.muted_by.rule.id, decision.muted_by.rule.owner, decision.muted_by.rule.reason) == (
        "Accounts['*'].Checks['rds_*']", "prowler-mutelist.yaml", "read replica for BI, no customer data")
    assert decision.priority == "P3"  # the other file's override applies too
    attacked = both.decide(replace(replica, attacked_directly=True), AFTER_EXPIRY)
    assert attacked.muted_by is None and attacked.broken_through[0].source == "prowler-mutelist.yaml"


def test_files_are_told_apart_by_content_and_named_by_their_hash(tmp_path: Path) -> None:
    hotpath_file, prowler_file = tmp_path / "a.yaml", tmp_path / "b.yaml"
    hotpath_file.write_text("version: 1\n")
    prowler_file.write_text("Mutelist:\n  Accounts: {}\n")
    policy = load_policy([hotpath_file, prowler_file])
    assert [(source.kind, source.version) for source in policy.sources] == [("hotpath", 1), ("prowler-mutelist", None)]
    digest = policy.digest
    hotpath_file.write_text("version: 1\nmute: []\n")
    assert load_policy([hotpath_file, prowler_file]).digest != digest
    assert load_policy([prowler_file, hotpath_file]).digest != digest


def test_an_unknown_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("version: 2\n")
    with pytest.raises(PolicyFileError) as raised:
        load_policy([path])
    assert [(p.line, p.message) for p in raised.value.problems] == [(1, "version: Input should be 1")]


def test_an_override_whose_floor_is_above_its_cap_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\noverrides:\n  - match: {environments: [dev]}\n    priority_floor: P1\n"
                    "    priority_cap: P3\n")
    with pytest.raises(PolicyFileError) as raised:
        load_policy([path])
    assert [(p.line, p.message) for p in raised.value.problems] == [
        (3, "overrides.0: priority_floor P1 is more urgent than priority_cap P3: no priority satisfies both")]


def test_a_mutelist_entry_with_a_long_description_and_key_still_mutes(tmp_path: Path) -> None:
    account, description = "a" * 600, "accepted by the risk board: " + "x" * 900
    path = tmp_path / "mutelist.yaml"
    path.write_text(f'Mutelist:\n  Accounts:\n    "{account}":\n      Checks:\n        "{"ec2_" * 150}":\n'
                    f'          Regions: ["*"]\n          Resources: ["*"]\n          Description: "{description}"\n')
    decision = load_policy([path]).decide(facts(account=account, check="ec2_" * 150, resource="i-1"), AFTER_EXPIRY)
    assert decision.muted_by is not None and decision.muted_by.rule.reason == description
