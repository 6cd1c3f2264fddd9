"""What `hotpath policy explain` says a policy changes, from the events of a replay without and with it."""

from __future__ import annotations

from policy_events import CARD, judged, mute

from stream.policy.explain import changes, outcomes


def test_a_muted_finding_says_by_which_rule_whose_until_when_and_why():
    without = outcomes([judged("exports", priority="P1")])
    with_policy = outcomes([judged("exports", state="suppressed", priority="P1", suppressed_by=mute())])

    assert changes(without, with_policy) == [
        "exports on arn:aws:s3:::payments-exports: muted by exports-accepted (payments.yaml, owner payments-team, "
        "until 2026-06-30, ticket RISK-42: public by design: signed statement links)"]


def test_overrides_and_routes_say_what_they_change_and_unchanged_findings_are_not_listed():
    without = outcomes([judged("capped", priority="P1"), judged("floored", priority="P4"),
                        judged("same", priority="P2")])
    with_policy = outcomes([judged("capped", priority="P3"), judged("same", priority="P2"),
                            judged("raised", priority="P2"),
                            judged("routed", routing={"sinks": ["payments-pd", "soc-og"], "opsgenie_team": "soc"})])

    assert changes(without, with_policy) == [
        "capped on arn:aws:s3:::payments-exports: priority P1 -> P3",
        "raised on arn:aws:s3:::payments-exports: escalated only with the policy, at P2",
        "routed on arn:aws:s3:::payments-exports: escalated only with the policy, at P2; "
        "routed to payments-pd, soc-og (Opsgenie team soc)",
        "floored on arn:aws:s3:::payments-exports: no longer escalated (was P4)"]


def test_a_mute_that_ends_during_the_replay_says_so_and_the_output_is_masked():
    without = outcomes([judged("exports")])
    with_policy = outcomes([judged("exports", state="suppressed", suppressed_by=mute(reason=f"card {CARD}")),
                            judged("exports", version=2, ended=("exports-accepted", "expired"))])

    (line,) = changes(without, with_policy)

    assert line.endswith("; mute exports-accepted ended (expired)")
    assert CARD not in line
