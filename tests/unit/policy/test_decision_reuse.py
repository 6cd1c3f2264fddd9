"""A policy matches a finding's facts once while they recur (the worker re-judges every live finding every
tick): the decisions stay the ones a fresh policy makes, time and attacks included, at a fraction of the cost."""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.policy import rules
from stream.policy.document import compile_policy, read_policy_file
from stream.policy.rules import FindingFacts, Policy

BEFORE_EXPIRY = datetime(2026, 12, 31, 12, tzinfo=UTC)
AFTER_EXPIRY = datetime(2027, 1, 1, tzinfo=UTC)
TEAMS = 100


def policy_text() -> str:
    """A policy of a hundred teams' mutes, overrides and routes, each rule with a few patterns to try."""
    lines = ["version: 1", "mute:"]
    for team in range(TEAMS):
        lines += [f"  - id: team-{team}-accepted", f"    owner: team-{team}", "    reason: accepted risk",
                  "    expires: 2026-12-31", "    match:", f'      checks: ["check_{team}_.*", "CTRL\\\\.{team}"]',
                  f'      resources: ["arn:aws:s3:::team-{team}-.*"]']
    lines += ["overrides:"] + [line for team in range(TEAMS) for line in (
        "  - match:", f"      owners: [team-{team}]", f'      tags: {{data: "pci-{team}|pii-{team}"}}',
        "    priority_floor: P2")]
    lines += ["routes:"] + [line for team in range(TEAMS) for line in (
        "  - match:", f'      resources: ["arn:aws:s3:::team-{team}-.*"]', f"    to: [pagerduty-team-{team}]")]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def policy_files(tmp_path_factory) -> list:
    path = tmp_path_factory.mktemp("policy") / "teams.yaml"
    path.write_text(policy_text())
    return [read_policy_file(path)]


def facts(team: int = 7, **given) -> FindingFacts:
    defaults = dict(check=f"check_{team}_public", resource=f"arn:aws:s3:::team-{team}-data", severity="high",
                    priority="P3", account="123456789012", region="eu-west-1", tags={"data": f"pci-{team}"},
                    owner=f"team-{team}")
    return FindingFacts(**{**defaults, **given})


def test_a_recurring_finding_is_decided_at_a_fifth_of_the_cost_of_the_first_time(policy_files) -> None:
    first, again = [], []
    for _ in range(30):
        policy = compile_policy(policy_files)  # a fresh version: nothing matched yet
        started = time.perf_counter()
        policy.decide(facts(), BEFORE_EXPIRY)
        first.append(time.perf_counter() - started)
        started = time.perf_counter()
        policy.decide(facts(), BEFORE_EXPIRY)
        again.append(time.perf_counter() - started)
    assert statistics.median(again) * 5 < statistics.median(first)


def test_a_recurring_finding_still_sees_its_mute_expire_and_an_attack_lift_it(policy_files) -> None:
    policy = compile_policy(policy_files)
    assert policy.decide(facts(), BEFORE_EXPIRY).muted_by.rule.id == "team-7-accepted"
    expired = policy.decide(facts(), AFTER_EXPIRY)
    assert expired.muted_by is None and [m.rule.id for m in expired.expired] == ["team-7-accepted"]
    attacked = policy.decide(replace(facts(), attacked_directly=True), BEFORE_EXPIRY)
    assert attacked.muted_by is None and [m.rule.id for m in attacked.broken_through] == ["team-7-accepted"]
    assert policy.decide(facts(), BEFORE_EXPIRY).muted_by.rule.id == "team-7-accepted"


finding_facts = st.builds(
    facts, team=st.integers(0, 3), check=st.sampled_from(["check_1_x", "CTRL.2", "other"]),
    resource=st.sampled_from(["arn:aws:s3:::team-1-a", "arn:aws:s3:::team-2-b", "arn:aws:s3:::other"]),
    priority=st.sampled_from(rules.PRIORITIES), owner=st.sampled_from(["team-1", "team-2", None]),
    tags=st.sampled_from([{}, {"data": "pci-1"}, {"data": "pii-2"}]), attacked_directly=st.booleans())


@settings(max_examples=60, deadline=None)
@given(seen=st.lists(st.tuples(finding_facts, st.sampled_from([BEFORE_EXPIRY, AFTER_EXPIRY])), max_size=30))
def test_a_policy_that_remembers_few_findings_decides_as_a_fresh_one(policy_files, seen) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rules, "MAX_MATCHED_FINDINGS", 3)
        remembering = compile_policy(policy_files)
        for finding, at in seen:
            assert remembering.decide(finding, at) == compile_policy(policy_files).decide(finding, at)


def test_a_new_version_of_the_policy_decides_by_its_own_rules(tmp_path: Path, policy_files) -> None:
    old = compile_policy(policy_files)
    assert old.decide(facts(), BEFORE_EXPIRY).muted_by is not None
    path = tmp_path / "teams.yaml"
    path.write_text(policy_text().replace('"check_7_.*", ', ""))  # team 7 mutes only its CTRL.7 now
    new: Policy = compile_policy([read_policy_file(path)])
    assert new.decide(facts(), BEFORE_EXPIRY).muted_by is None
