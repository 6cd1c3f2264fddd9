"""The audit trail: which escalation events become audit records, what they say, and the publication record.

Records are checked against topics/schemas/audit.schema.json, which must be what the model generates.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from jsonschema import Draft202012Validator
from paths import SCHEMAS
from policy_events import CARD, VERSION, judged, mute

from stream.policy.audit import audit_records, audit_schema, policy_diff, published_record

VALIDATOR = Draft202012Validator(json.loads((SCHEMAS / "audit.schema.json").read_text()),
                                 format_checker=Draft202012Validator.FORMAT_CHECKER)


def nothing_known(finding_uid: str) -> None:
    return None


def test_the_schema_file_is_the_one_the_model_generates():
    assert (SCHEMAS / "audit.schema.json").read_text() == audit_schema(), (
        "regenerate: python -c 'from stream.policy.audit import audit_schema; print(audit_schema(), end=\"\")' "
        "> topics/schemas/audit.schema.json")


def test_a_suppression_is_recorded_once_with_the_rule_that_made_it():
    rule = mute()
    events = [judged(state="escalated"), judged(state="suppressed", suppressed_by=rule),
              judged(state="suppressed", suppressed_by=rule, version=3)]

    records = audit_records(events, nothing_known)

    assert len(records) == 1
    key, record = records[0]
    assert key == "finding-1"
    assert record == {"kind": "suppressed", "at": "2025-03-14T09:15:01.002Z", "policy_version": VERSION,
                      "finding_uid": "finding-1", "escalation_uid": events[1]["escalation_uid"],
                      "resource": "arn:aws:s3:::payments-exports", "rule_id": "exports-accepted",
                      "source": "payments.yaml", "owner": "payments-team",
                      "reason": "public by design: signed statement links", "ticket": "RISK-42",
                      "expires": "2026-06-30", "why": None}
    VALIDATOR.validate(record)


def test_a_suppression_already_in_force_is_not_recorded_again_but_another_rule_is():
    in_force = {"finding-1": mute("old-rule")}

    assert audit_records([judged(state="suppressed", suppressed_by=mute("old-rule"))], in_force.get) == []
    (_, record), = audit_records([judged(state="suppressed", suppressed_by=mute("new-rule"))], in_force.get)
    assert (record["kind"], record["rule_id"]) == ("suppressed", "new-rule")


@pytest.mark.parametrize(("why", "kind"), [("expired", "expired"), ("removed", "unsuppressed"),
                                           ("attack", "unsuppressed")])
def test_the_end_of_a_suppression_names_the_rule_that_ended_and_why(why, kind):
    in_force = {"finding-1": mute()}

    (key, record), = audit_records([judged(state="escalated", ended=("exports-accepted", why))], in_force.get)

    assert key == "finding-1"
    assert (record["kind"], record["why"], record["rule_id"]) == (kind, why, "exports-accepted")
    assert (record["owner"], record["reason"], record["ticket"], record["expires"]) == (
        "payments-team", "public by design: signed statement links", "RISK-42", "2026-06-30")
    VALIDATOR.validate(record)


def test_a_suppression_and_its_end_in_one_batch_are_both_recorded_and_the_end_knows_the_rule():
    events = [judged(state="suppressed", suppressed_by=mute()), judged(state="escalated", version=2,
                                                                      ended=("exports-accepted", "expired"))]

    records = [record for _, record in audit_records(events, nothing_known)]

    assert [record["kind"] for record in records] == ["suppressed", "expired"]
    assert records[1]["owner"] == "payments-team"


def test_a_mute_that_expires_as_another_rule_mutes_the_finding_records_both_in_that_order():
    in_force = {"finding-1": mute("until-june")}
    event = judged(state="suppressed", suppressed_by=mute("until-december"), ended=("until-june", "expired"))

    records = [record for _, record in audit_records([event], in_force.get)]

    assert [(record["kind"], record["rule_id"]) for record in records] == [
        ("expired", "until-june"), ("suppressed", "until-december")]


def test_an_end_whose_suppression_is_no_longer_known_is_still_recorded_without_the_rules_details():
    (_, record), = audit_records([judged(ended=("exports-accepted", "removed"))], nothing_known)

    assert (record["kind"], record["rule_id"], record["owner"], record["reason"]) == (
        "unsuppressed", "exports-accepted", None, None)
    VALIDATOR.validate(record)


def test_events_that_change_no_suppression_make_no_record():
    events = [judged(state="escalated"), judged(state="updated", version=2), judged(state="resolved", version=3)]

    assert audit_records(events, nothing_known) == []


def test_a_publication_records_who_the_versions_and_a_masked_diff_of_each_file():
    before = {"payments.yaml": "version: 1\nmute:\n  - id: exports-accepted\n", "old.yaml": "version: 1\n"}
    after = {"payments.yaml": f"version: 1\nmute: []\n# card {CARD}\n", "dev.yaml": "version: 1\n"}

    key, record = published_record("b" * 64, before, after, previous_version=VERSION, by="alice",
                                   at=datetime(2026, 12, 4, 21, 30, tzinfo=UTC))

    assert key == "b" * 64
    assert {k: v for k, v in record.items() if k != "diff"} == {
        "kind": "policy_published", "at": "2026-12-04T21:30:00.000Z", "policy_version": "b" * 64,
        "previous_version": VERSION, "by": "alice", "sources": ["payments.yaml", "dev.yaml"]}
    diff = record["diff"]
    assert "-  - id: exports-accepted\n" in diff and "+mute: []\n" in diff
    assert "--- /dev/null\n+++ b/dev.yaml\n" in diff and "--- a/old.yaml\n+++ /dev/null\n" in diff
    assert CARD not in diff and "1111" in diff  # masked, the last digits kept
    VALIDATOR.validate(record)


def test_the_first_publication_diffs_against_nothing():
    diff = policy_diff({}, {"payments.yaml": "version: 1\n"})

    assert diff == "--- /dev/null\n+++ b/payments.yaml\n@@ -0,0 +1 @@\n+version: 1\n"
