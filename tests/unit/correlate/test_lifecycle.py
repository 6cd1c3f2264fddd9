"""Each lifecycle transition, and the absence of one when nothing changed."""

from dataclasses import replace

from stream.correlate.lifecycle import EscalationState, Verdict, decide, escalation_uid

NEW = EscalationState()


def verdict(priority="P2", open_=True, live=True, stale=False, score=70.0):
    return Verdict(open=open_, priority=priority, score=score, live=live, stale=stale)


def test_first_crossing_of_the_threshold_escalates_with_version_1():
    transition, state = decide(NEW, verdict("P2"), "P3")
    assert transition == "escalated" and state.version == 1 and state.active and state.priority == "P2"


def test_below_threshold_or_not_live_stays_quiet():
    assert decide(NEW, verdict("P4", score=40), "P3") == (None, NEW)
    assert decide(NEW, verdict("P1", live=False), "P3") == (None, NEW)
    assert decide(NEW, verdict("P1", open_=False), "P3") == (None, NEW)


def test_priority_change_updates_same_priority_does_not():
    _, escalated = decide(NEW, verdict("P2"), "P3")
    assert decide(escalated, verdict("P2", score=71.0), "P3") == (None, escalated)
    transition, updated = decide(escalated, verdict("P1", score=90.0), "P3")
    assert transition == "updated" and updated.version == 2 and updated.priority == "P1"


def test_a_lull_in_traffic_does_not_downgrade():
    _, escalated = decide(NEW, verdict("P1"), "P3")
    assert decide(escalated, verdict("P4", live=False), "P3") == (None, escalated)


def test_resolved_at_source_or_stale_resolves_then_can_escalate_again():
    _, escalated = decide(NEW, verdict("P2"), "P3")
    transition, resolved = decide(escalated, verdict("P2", open_=False), "P3")
    assert transition == "resolved" and resolved.version == 2 and not resolved.active
    transition, stale = decide(escalated, verdict("P2", stale=True), "P3")
    assert transition == "resolved" and stale.version == 2
    transition, again = decide(resolved, verdict("P3", score=50.0), "P3")
    assert transition == "escalated" and again.version == 3


def test_escalation_uid_is_stable_per_finding():
    assert escalation_uid("f-1") == escalation_uid("f-1") != escalation_uid("f-2")
    assert escalation_uid("f-1").startswith("hp-") and len(escalation_uid("f-1")) == 35


def muted(priority="P2", rule="accepted-risk", **changes):
    return replace(verdict(priority, **changes), muted_by=rule)


def test_a_mute_turns_a_first_escalation_into_suppressed_and_a_muted_finding_below_threshold_stays_quiet():
    transition, suppressed = decide(NEW, muted("P2"), "P3")
    assert (transition, suppressed.version, suppressed.muted_by, suppressed.suppressed) == (
        "suppressed", 1, "accepted-risk", True)
    assert decide(NEW, muted("P4", score=40), "P3") == (None, NEW)


def test_a_suppressed_finding_stays_quiet_while_its_priority_moves_and_says_when_another_rule_takes_over():
    _, suppressed = decide(NEW, muted("P2"), "P3")
    assert decide(suppressed, muted("P1", score=90.0), "P3") == (None, suppressed)
    transition, other = decide(suppressed, muted("P1", rule="another", score=90.0), "P3")
    assert (transition, other.version, other.muted_by, other.priority) == ("suppressed", 2, "another", "P1")


def test_the_end_of_a_mute_escalates_at_the_priority_last_seen_live_whatever_the_threshold():
    _, suppressed = decide(NEW, muted("P2"), "P3")
    transition, again = decide(suppressed, verdict("P4", score=40, live=False), "P3")
    assert (transition, again.version, again.priority, again.muted_by) == ("escalated", 2, "P2", None)
    transition, again = decide(suppressed, verdict("P4", score=40), "P3")
    assert (transition, again.priority) == ("escalated", "P4")


def test_a_mute_on_an_escalated_finding_suppresses_it_and_a_suppressed_one_resolves_when_stale():
    _, escalated = decide(NEW, verdict("P1", score=90.0), "P3")
    transition, suppressed = decide(escalated, muted("P1", live=False), "P3")
    assert (transition, suppressed.version, suppressed.priority) == ("suppressed", 2, "P1")
    transition, resolved = decide(suppressed, muted("P1", live=False, stale=True), "P3")
    assert (transition, resolved.active, resolved.muted_by) == ("resolved", False, None)


def test_an_escalation_an_attack_lifted_a_mute_for_stays_lifted_until_it_resolves():
    _, suppressed = decide(NEW, muted("P2"), "P3")
    transition, lifted = decide(suppressed, replace(verdict("P1", score=90.0), lifted=True), "P3")
    assert (transition, lifted.lifted, lifted.muted_by) == ("escalated", True, None)
    transition, updated = decide(lifted, verdict("P2"), "P3")
    assert (transition, updated.lifted) == ("updated", True)
    transition, resolved = decide(updated, verdict("P2", open_=False), "P3")
    assert (transition, resolved.lifted) == ("resolved", False)
