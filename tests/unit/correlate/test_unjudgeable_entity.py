"""No exception may half-apply or lose an escalation (issue 13): an entity that cannot be judged changes
nothing and is parked with the reason while the others are published."""

from __future__ import annotations

from hostile import YEAR_10000_IN_UTC, alert_record
from test_correlate import BUCKET, VAULT, Harness, at, finding

from stream.models import Alert


def test_an_entity_that_cannot_be_judged_changes_nothing_and_the_others_are_published():
    h = Harness()
    for record in (finding("f-bucket-1", BUCKET, severity="critical"), finding("f-bucket-2", BUCKET),
                   finding("f-vault", VAULT, severity="critical")):
        h.feed(h.router.finding(record))
    correlator = h.correlator
    correlator.process(BUCKET, alert_record("poison", BUCKET, YEAR_10000_IN_UTC), position=100, defer=True)
    honest = Alert(uid="gd-1", source="guardduty", rule="Exfiltration:S3/AnomalousBehavior", severity="high",
                   entities=[VAULT], observed_at=at(30))
    correlator.process(VAULT, honest.to_record(), position=101, defer=True)

    published = correlator.judge_deferred()

    assert [(e.event["finding_uid"], e.event["state"], e.event["version"]) for e in published] == [
        ("f-vault", "escalated", 1)]
    assert list(correlator.failures) == [BUCKET]
    assert "year 10000 is out of range" in correlator.failures[BUCKET]
    assert [f["esc"] for f in h.store[BUCKET]["findings"].values()] == [None, None], "a state reports an unsent event"
