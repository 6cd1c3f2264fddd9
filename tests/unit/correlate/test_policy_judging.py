"""The policy in the engine: a mute suppresses what would page, and its end (expiry, removal, an attack)
escalates again by itself; overrides change the priority and say so; routes and the policy version ride
on every event."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from engine_harness import BUCKET, T0, Harness, at, finding, touch
from jsonschema import Draft202012Validator

from stream.correlate.event import SCHEMA_PATH
from stream.correlate.lifecycle import escalation_uid
from stream.deliver.escalation import escalation_from_dict, masked_event
from stream.models import Alert, AssetTags
from stream.policy.document import load_policy
from stream.policy.rules import Policy

CHECK = "s3_bucket_public_access"  # the check of the harness's findings
MUTE = """\
version: 1
mute:
  - id: statements-public
    owner: team-payments
    reason: statements are served through a signed CDN; the bucket policy is the accepted risk
    ticket: RISK-42
    expires: 2026-11-23
    match: {checks: [s3_bucket_public_.*], resources: ["arn:aws:s3:::acme-.*"]}
"""
MIDNIGHT_AFTER_T0 = datetime(2026, 11, 24, tzinfo=UTC).timestamp()


def policy(tmp_path: Path, text: str, name: str = "policy.yaml") -> Policy:
    path = tmp_path / name
    path.write_text(text)
    return load_policy([path])


class Clock:
    """The worker's wall clock, moved by the test."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def exercised(h: Harness, when: float = 10, spans: int = 200) -> None:
    """An internet-facing bucket with a high-severity finding, exercised: it pages at P2 without a policy."""
    h.feed(h.router.finding(finding("f-bucket", BUCKET, when=when - 5)))
    h.traces(touch(BUCKET, [], when, spans=spans, internet=spans))


def events(h: Harness) -> list[tuple[str, int]]:
    return [(e["state"], e["version"]) for e in h.out if e["finding_uid"] == "f-bucket"]


def test_without_a_policy_the_bucket_escalates_and_names_no_policy() -> None:
    h = Harness()
    exercised(h)
    event = h.latest("f-bucket")
    assert (event["state"], event["priority"], event["policy_version"]) == ("escalated", "P2", None)
    assert "suppressed_by" not in event and "routing" not in event and "suppression_ended" not in event


def test_a_muted_finding_is_judged_and_published_suppressed_with_who_why_and_until_when(tmp_path) -> None:
    muting = policy(tmp_path, MUTE)
    h = Harness(policy=muting)
    exercised(h)
    assert events(h) == [("suppressed", 1)]
    event = h.latest("f-bucket")
    assert event["priority"] == "P2" and event["policy_version"] == muting.digest
    assert event["suppressed_by"] == {
        "rule_id": "statements-public", "source": "policy.yaml", "policy_version": muting.digest,
        "owner": "team-payments", "reason": "statements are served through a signed CDN; the bucket policy is the "
                                            "accepted risk", "ticket": "RISK-42", "expires": "2026-11-23"}
    assert event["reasons"][0].startswith("suppressed by rule statements-public (team-payments) until 2026-11-23")
    h.traces(touch(BUCKET, [], 20, spans=400, internet=400))
    h.tick()
    assert events(h) == [("suppressed", 1)]  # judged again, still muted: nothing new to say


def test_a_muted_finding_that_would_not_page_publishes_nothing(tmp_path) -> None:
    h = Harness(policy=policy(tmp_path, MUTE))
    h.feed(h.router.finding(finding("f-bucket", BUCKET)))  # not exercised: held below P3
    h.tick()
    assert events(h) == []


def test_a_mute_that_expires_escalates_at_midnight_on_a_tick_without_new_input(tmp_path) -> None:
    clock = Clock()
    h = Harness(policy=policy(tmp_path, MUTE), clock=clock)
    exercised(h)
    clock.now = MIDNIGHT_AFTER_T0 - 1
    h.tick()
    assert events(h) == [("suppressed", 1)]
    clock.now = MIDNIGHT_AFTER_T0
    h.tick()
    assert events(h) == [("suppressed", 1), ("escalated", 2)]
    event = h.latest("f-bucket")
    assert event["priority"] == "P2" and "suppressed_by" not in event
    assert event["suppression_ended"] == {"rule_id": "statements-public", "why": "expired"}
    assert event["reasons"][0] == "mute rule statements-public expired"
    h.tick()
    assert len(events(h)) == 2


def test_replay_expires_mutes_by_event_time(tmp_path) -> None:
    """The worker's wall clock never reaches the mute's end here; the data's time does."""
    h = Harness(policy=policy(tmp_path, MUTE))
    h.engine.correlator.policy_time = "event"
    exercised(h)
    assert events(h) == [("suppressed", 1)]
    h.traces(touch(BUCKET, [], MIDNIGHT_AFTER_T0 - T0 + 60, spans=200, internet=200))
    assert events(h)[-1] == ("escalated", 2)
    assert h.latest("f-bucket")["suppression_ended"]["why"] == "expired"


def test_removing_the_mute_through_set_policy_escalates_at_once_and_adding_one_suppresses(tmp_path) -> None:
    muting = policy(tmp_path, MUTE)
    h = Harness(policy=muting)
    exercised(h)
    empty = policy(tmp_path, "version: 1\n", "empty.yaml")
    h.engine.set_policy(empty)
    h.settle()
    assert events(h) == [("suppressed", 1), ("escalated", 2)]
    event = h.latest("f-bucket")
    assert event["suppression_ended"] == {"rule_id": "statements-public", "why": "removed"}
    assert event["policy_version"] == empty.digest != muting.digest
    h.engine.set_policy(muting)
    h.settle()
    assert events(h)[-1] == ("suppressed", 3)
    assert h.latest("f-bucket")["suppressed_by"]["rule_id"] == "statements-public"


def guardduty_on_the_bucket(when: float = 30) -> Alert:
    return Alert(uid="gd-1", source="guardduty", rule="Exfiltration:S3/AnomalousBehavior", severity="high",
                 entities=[BUCKET], observed_at=at(when), subject="acme-statements")


def test_an_attack_on_the_muted_resource_breaks_through_the_mute(tmp_path) -> None:
    h = Harness(policy=policy(tmp_path, MUTE))
    exercised(h)
    h.feed(h.router.alert(guardduty_on_the_bucket()))
    assert events(h) == [("suppressed", 1), ("escalated", 2)]
    event = h.latest("f-bucket")
    assert event["suppression_ended"] == {"rule_id": "statements-public", "why": "attack"}
    assert event["priority"] == "P1"


def test_the_page_an_attack_caused_is_not_closed_by_the_mute_when_the_alert_ages_out(tmp_path) -> None:
    h = Harness(policy=policy(tmp_path, MUTE))
    exercised(h)
    h.feed(h.router.alert(guardduty_on_the_bucket(when=30)))
    aged_out = 30 + h.settings.window_size_s + h.settings.allowed_lateness_s + 60
    h.traces(touch(BUCKET, [], aged_out, spans=200, internet=200))
    h.tick()
    assert "GuardDuty" not in " ".join(h.latest("f-bucket")["reasons"])  # the alert is no longer evidence
    assert [state for state, _ in events(h)][:2] == ["suppressed", "escalated"]
    assert "suppressed" not in [state for state, _ in events(h)][2:]
    # Once that escalation has ended, the mute applies again to the finding's next one.
    h.feed(h.router.finding(finding("f-bucket", BUCKET, status="resolved", when=aged_out + 10)))
    h.feed(h.router.finding(finding("f-bucket", BUCKET, when=aged_out + 20)))
    h.traces(touch(BUCKET, [], aged_out + 30, spans=200, internet=200))
    assert [state for state, _ in events(h)][-2:] == ["resolved", "suppressed"]


def test_a_rule_that_says_so_holds_through_an_attack(tmp_path) -> None:
    h = Harness(policy=policy(tmp_path, MUTE.replace("    match:", "    break_on_attack: false\n    match:")))
    exercised(h)
    h.feed(h.router.alert(guardduty_on_the_bucket()))
    h.tick()
    assert events(h) == [("suppressed", 1)]


def test_a_suppressed_finding_resolved_at_the_source_is_published_resolved(tmp_path) -> None:
    h = Harness(policy=policy(tmp_path, MUTE))
    exercised(h)
    h.feed(h.router.finding(finding("f-bucket", BUCKET, status="resolved", when=60)))
    assert events(h) == [("suppressed", 1), ("resolved", 2)]
    assert "suppressed_by" not in h.latest("f-bucket")


OVERRIDES = """\
version: 1
overrides:
  - id: dev-cap
    match: {environments: [dev]}
    priority_cap: P3
  - id: config-is-low
    match: {checks: [s3_.*], tags: {team: web}}
    severity: low
  - id: card-data-floor
    match: {tags: {data_classification: pci}}
    priority_floor: P1
"""


def test_nothing_in_dev_pages_above_p3_and_the_event_says_which_rule_capped_it(tmp_path) -> None:
    h = Harness(policy=policy(tmp_path, OVERRIDES))
    h.asset(id=BUCKET, tags=AssetTags(environment="dev"))
    exercised(h)
    event = h.latest("f-bucket")
    assert (event["state"], event["priority"]) == ("escalated", "P3")
    assert event["score"] >= h.settings.score.p2_min  # the score is the evidence's; the priority the policy's
    assert "priority capped at P3 by rule dev-cap" in event["reasons"]


def test_a_floor_raises_the_priority(tmp_path) -> None:
    h = Harness(policy=policy(tmp_path, OVERRIDES))
    h.asset(id=BUCKET, tags=AssetTags(data_classification="pci"))
    exercised(h)
    event = h.latest("f-bucket")
    assert event["priority"] == "P1" and "priority raised to P1 by rule card-data-floor" in event["reasons"]


def test_a_severity_override_is_scored(tmp_path) -> None:
    overridden = Harness(policy=policy(tmp_path, OVERRIDES))
    plain = Harness()
    for h in (overridden, plain):
        h.asset(id=BUCKET, tags=AssetTags(team="web"))
        exercised(h)
    event, before = overridden.latest("f-bucket"), plain.latest("f-bucket")
    assert event["finding"]["severity"] == "high" and event["factors"]["severity"] == "low"
    assert event["score"] < before["score"]
    assert "severity set to low (the scanner said high) by rule config-is-low" in event["reasons"]


ROUTES = """\
version: 1
routes:
  - id: payments
    match: {owners: [payments]}
    to: [pagerduty-payments, soc-webhook]
    opsgenie_team: payments-oncall
"""


def test_a_matching_route_rides_on_the_event_and_none_leaves_it_to_every_sink(tmp_path) -> None:
    routed = Harness(policy=policy(tmp_path, ROUTES))
    routed.asset(id=BUCKET, tags=AssetTags(owner="payments"))
    exercised(routed)
    assert routed.latest("f-bucket")["routing"] == {"sinks": ["pagerduty-payments", "soc-webhook"],
                                                    "opsgenie_team": "payments-oncall"}
    unrouted = Harness(policy=policy(tmp_path, ROUTES))
    unrouted.asset(id=BUCKET, tags=AssetTags(owner="web"))
    exercised(unrouted)
    assert "routing" not in unrouted.latest("f-bucket")


@pytest.mark.parametrize("text", [MUTE, OVERRIDES, ROUTES])
def test_every_event_judged_by_a_policy_names_its_version(tmp_path, text) -> None:
    judged_by = policy(tmp_path, text)
    h = Harness(policy=judged_by)
    exercised(h)
    assert h.out and {event["policy_version"] for event in h.out} == {judged_by.digest}


def test_suppressed_ended_and_routed_events_are_valid_for_the_schema_and_the_sinks(tmp_path) -> None:
    schema = Draft202012Validator(json.loads(SCHEMA_PATH.read_text()),
                                  format_checker=Draft202012Validator.FORMAT_CHECKER)
    h = Harness(policy=policy(tmp_path, MUTE + ROUTES.removeprefix("version: 1\n")))
    h.asset(id=BUCKET, tags=AssetTags(owner="payments"))
    exercised(h)
    h.feed(h.router.alert(guardduty_on_the_bucket()))
    published = [masked_event(event) for event in h.out]
    assert [e["state"] for e in published] == ["suppressed", "escalated"]
    assert {"suppressed_by", "routing"} <= set(published[0]) and "suppression_ended" in published[1]
    for event in published:
        schema.validate(event)
        assert escalation_from_dict(event).record() == event
    assert not schema.is_valid(published[0] | {"suppressed_by": published[0]["suppressed_by"] | {"expires": "soon"}})
    assert not schema.is_valid(published[1] | {"suppression_ended": {"rule_id": "x", "why": "bored"}})


def test_a_suppression_already_published_is_not_published_again_after_a_lost_state_write(tmp_path) -> None:
    h = Harness(policy=policy(tmp_path, MUTE))
    h.feed(h.router.finding(finding("f-bucket", BUCKET)))  # the state as the changelog kept it: nothing published
    published = {"escalation_uid": escalation_uid("f-bucket"), "resource": BUCKET, "state": "suppressed",
                 "version": 1, "priority": "P2", "score": 60.0, "suppressed_by": {"rule_id": "statements-public"}}
    assert h.engine.reconcile(0, [published], owns=lambda resource: True) == 1
    h.traces(touch(BUCKET, [], 10, spans=200, internet=200))
    assert events(h) == []


def test_a_card_number_pasted_into_a_rule_never_leaves_in_the_event(tmp_path) -> None:
    pasted = MUTE.replace("reason: statements", "reason: card 4111 1111 1111 1111 in a test, statements") \
                 .replace("ticket: RISK-42", "ticket: token=ghp_0123456789abcdefghijABCDEFGHIJ012345")
    h = Harness(policy=policy(tmp_path, pasted))
    exercised(h)
    text = json.dumps(h.latest("f-bucket"))
    assert h.latest("f-bucket")["state"] == "suppressed"
    assert "4111 1111 1111 1111" not in text and "ghp_0123456789abcdefghij" not in text


def test_a_resolved_event_says_first_why_it_resolved_even_under_a_policy(tmp_path) -> None:
    h = Harness(policy=policy(tmp_path, OVERRIDES))
    h.asset(id=BUCKET, tags=AssetTags(environment="dev"))
    exercised(h)
    h.feed(h.router.finding(finding("f-bucket", BUCKET, status="resolved", when=60)))
    assert h.latest("f-bucket")["reasons"][:2] == ["resolved at the source (prowler)",
                                                   "priority capped at P3 by rule dev-cap"]
