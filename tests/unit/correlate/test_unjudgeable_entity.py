"""No exception may half-apply or lose an escalation (issue 13): an entity that cannot be judged changes
nothing and is parked with the reason while the others are published."""

from __future__ import annotations

from engine_harness import BUCKET, VAULT, Harness, at, finding
from hostile import YEAR_10000_IN_UTC, alert_record

from stream.models import Alert


def test_an_entity_that_cannot_be_judged_changes_nothing_and_the_others_are_published():
    h = Harness()
    for record in (finding("f-bucket-1", BUCKET, severity="critical"), finding("f-bucket-2", BUCKET),
                   finding("f-vault", VAULT, severity="critical")):
        h.feed(h.router.finding(record))
    correlator = h.correlator
    poison = alert_record("poison", BUCKET, YEAR_10000_IN_UTC)
    correlator.process(BUCKET, poison, position=h.position + 1, defer=True)
    honest = Alert(uid="gd-1", source="guardduty", rule="Exfiltration:S3/AnomalousBehavior", severity="high",
                   entities=[VAULT], observed_at=at(30))
    correlator.process(VAULT, honest.to_record(), position=h.position + 2, defer=True)

    published = correlator.judge_deferred()

    assert [(e.finding_uid, e.state, e.version) for e in published] == [
        ("f-vault", "escalated", 1)]
    assert list(correlator.failures) == [BUCKET]
    assert "year 10000 is out of range" in correlator.failures[BUCKET]
    assert [f.escalation.version for f in h.store[BUCKET].findings.values()] == [0, 0], \
        "a state reports an unsent event"
