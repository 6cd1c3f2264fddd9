"""The correlation core on its own: the join, the held rule, the path, the lifecycle, idempotence."""


import pytest
from engine_harness import BUCKET, DB, SG, T0, VAULT, Harness, at, finding, touch
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.ingest.router import merge_trace_batches
from stream.models import Alert, AssetTags, Remediation, Touch, TraceBatch


@pytest.fixture
def estate():
    h = Harness()
    h.asset(id=BUCKET, aliases=["acme-statements"], tags=AssetTags(criticality="critical", data_classification="pci",
                                                                   owner="payments", environment="prod"))
    h.asset(id=SG, exercised_via=[DB])
    h.feed(h.router.finding(finding("f-bucket", BUCKET)))
    h.feed(h.router.finding(finding("f-vault", VAULT, severity="critical")))
    h.feed(h.router.finding(finding("f-sg", SG, severity="medium")))
    return h


def test_exercised_internet_reached_bucket_with_falco_on_caller_is_p1_with_path(estate):
    h = estate
    h.feed(h.router.alert(Alert(uid="falco-1", source="falco", rule="Terminal shell in container",
                                severity="critical", entities=["service:payments-api"], observed_at=at(5),
                                subject="payments-api-7d9f")))
    h.traces(touch("service:payments-api", [], 10, internet=40),
             touch("service:ledger", ["service:payments-api"], 11),
             touch(BUCKET, ["service:ledger"], 12, spans=800))
    h.tick()
    event = h.latest("f-bucket")
    assert event["state"] in ("escalated", "updated") and event["priority"] == "P1"
    assert event["factors"]["exposure_path"] == ["service:payments-api", "service:ledger", BUCKET]
    assert "reached from the internet via payments-api -> ledger" in event["reasons"]
    assert any(r.startswith("Falco: Terminal shell in container on payments-api-7d9f") for r in event["reasons"])
    assert event["evidence"]["alert_uids"] == ["falco-1"]
    assert event["evidence"]["trace_ids"] == ["0af7651916cd43dd8448eb211c80319c"]
    assert event["asset"] == {"owner": "payments", "environment": "prod", "service": None}


def test_unexercised_critical_finding_stays_held(estate):
    h = estate
    h.traces(touch(BUCKET, ["service:ledger"], 12))
    h.tick()
    assert h.latest("f-vault") is None


def test_attack_on_the_resource_itself_escalates_without_traffic(estate):
    h = estate
    h.feed(h.router.alert(Alert(uid="gd-1", source="guardduty", rule="Exfiltration:S3/AnomalousBehavior",
                                severity="high", entities=[VAULT], observed_at=at(30), subject="acme-kyc-archive")))
    event = h.latest("f-vault")
    assert event is not None and event["state"] == "escalated" and not event["factors"]["held"]


def test_the_escalation_carries_the_latest_compliance_and_remediation_of_its_finding(estate):
    h = estate
    advice = Remediation(description="Encrypt the vault", references=["https://docs.aws.amazon.com/kms"])
    newer = finding("f-vault", VAULT, severity="critical", when=20).model_copy(
        update={"compliance": {"CIS-2.0": ["2.1.1"], "PCI DSS v4.0.1": ["3.5.1"]}, "remediation": advice})
    h.feed(h.router.finding(newer))
    h.feed(h.router.alert(Alert(uid="gd-1", source="guardduty", rule="Exfiltration:S3/AnomalousBehavior",
                                severity="high", entities=[VAULT], observed_at=at(30), subject="acme-kyc-archive")))

    event = h.latest("f-vault")
    assert event["finding"]["compliance"] == {"CIS-2.0": ["2.1.1"], "PCI DSS v4.0.1": ["3.5.1"]}
    assert event["finding"]["remediation"] == {"description": "Encrypt the vault",
                                               "references": ["https://docs.aws.amazon.com/kms"]}


def test_exercised_via_lets_database_traffic_exercise_the_security_group(estate):
    h = estate
    h.traces(touch(DB, ["service:ledger"], 20, spans=50))
    event = h.latest("f-sg")
    assert event is None or event["factors"]["exercised"]
    assert h.store[SG].via == {DB: T0 + 20}
    assert h.store[SG].buckets[0].spans == 50


def test_resolution_at_source_emits_resolved_once_and_redelivery_emits_nothing(estate):
    h = estate
    h.traces(touch("service:payments-api", [], 10, internet=40), touch(BUCKET, ["service:payments-api"], 12))
    assert h.latest("f-bucket")["state"] == "escalated"
    resolved = finding("f-bucket", BUCKET, status="resolved", when=60)
    h.feed(h.router.finding(resolved))
    event = h.latest("f-bucket")
    assert event["state"] == "resolved" and event["version"] == 2
    assert event["reasons"][0] == "resolved at the source (prowler)"
    count = len(h.out)
    # The same records again (a redelivery at the same offsets) and an older "open" scan: no event.
    h.correlator.process(BUCKET, resolved.to_record(), position=h.position)
    h.feed(h.router.finding(finding("f-bucket", BUCKET, status="open", when=0)))
    h.tick()
    assert len(h.out) == count


def test_after_the_partitions_are_raised_an_entity_counts_the_events_of_its_new_partition():
    """Raising hotpath.entity-events' partitions moves entities to partitions whose offsets have nothing to do
    with the old one's: a worker that holds the state still applies them (and still skips a redelivery)."""
    h = Harness()
    before = h.router.traces(TraceBatch([touch(BUCKET, ["service:payments-api"], 10, spans=5)], {}))
    h.engine.apply_events(before.events, partition=0, offset=5000, origin="p0")
    h.settle()
    moved = h.router.traces(TraceBatch([touch(BUCKET, ["service:payments-api"], 20, spans=7)], {}))
    for _ in range(2):  # delivered, then redelivered
        h.engine.apply_events(moved.events, partition=7, offset=3, origin="p7")
        h.settle()
    assert h.store[BUCKET].partition == 7
    assert sum(bucket.spans for bucket in h.store[BUCKET].buckets) == 12


def test_the_correlator_keeps_one_copy_of_an_entity_id_however_many_records_name_it():
    """Each entity-events record decodes its own copy of every id: a worker holding the traffic of 100k
    resources without findings kept two copies of each (the store's, and the latest in its eviction order)."""
    h = Harness()
    for when in (10, 70, 130):
        h.traces(touch("".join(["arn:aws:s3:::acme-", "statements"]), ["service:payments-api"], when))  # a new copy
    stored = next(key for key in h.store if key == BUCKET)
    remembered = next(key for key in h.correlator.unclaimed if key == BUCKET)
    assert remembered is stored


def test_finding_goes_stale_after_configured_windows_without_traffic():
    h = Harness(window_size_s=300, window_step_s=60, stale_windows=2)
    h.feed(h.router.finding(finding("f-1", BUCKET)))
    h.traces(touch("service:payments-api", [], 10, internet=5), touch(BUCKET, ["service:payments-api"], 10))
    assert h.latest("f-1")["state"] == "escalated"
    # Time moves on elsewhere: two records vouch for it (one alone moves nothing, see test_event_time).
    h.traces(touch("service:other", [], 10 + 700), touch("service:other", [], 10 + 701))
    h.tick()
    event = h.latest("f-1")
    assert event["state"] == "resolved"
    assert event["reasons"][0] == "not exercised for 2 windows (10 min)"


def test_late_touch_within_allowed_lateness_still_escalates():
    h = Harness()
    h.feed(h.router.finding(finding("f-1", BUCKET)))
    h.traces(touch("service:x", [], 2000))
    h.traces(touch("service:payments-api", [], 2000, internet=3))
    h.traces(touch(BUCKET, ["service:payments-api"], 2000 - 900 - 120))  # late, but within 5 min
    h.tick()
    assert h.latest("f-1")["state"] == "escalated"


def test_idle_entities_without_findings_are_swept():
    h = Harness(window_size_s=300, window_step_s=60, stale_windows=1)
    h.traces(touch("service:a", [], 0), touch("service:b", [], 1000), touch("service:b", [], 1001))
    assert h.correlator.sweep() == 1
    assert set(h.store) == {"service:b"}


def test_alert_on_a_pod_counts_once_traces_name_its_service_whatever_the_order():
    h = Harness()
    h.feed(h.router.finding(finding("f-bucket", BUCKET)))
    # Falco fires before any trace has shown which service the pod runs: it stays on the pod.
    pod_alert = Alert(uid="falco-early", source="falco", rule="Terminal shell in container", severity="critical",
                      entities=["k8s:pod/pay/payments-api-7d9f-x2k4q"], observed_at=at(5),
                      subject="payments-api-7d9f-x2k4q")
    h.feed(h.router.alert(pod_alert))
    h.traces(touch("service:payments-api", [], 10), touch(BUCKET, ["service:payments-api"], 12),
             pods={"payments-api-7d9f-x2k4q": "service:payments-api"})
    h.tick()
    event = h.latest("f-bucket")
    assert event["evidence"]["alert_uids"] == ["falco-early"]
    assert any(r.startswith("Falco: Terminal shell in container on payments-api-7d9f-x2k4q") for r in event["reasons"])


MERGE_ENTITIES = (BUCKET, VAULT, "service:ledger")
MERGE_CALLERS = ("service:payments-api", "service:batch", "service:frontend")


@st.composite
def trace_messages(draw):
    """A few trace messages' touches: entities, callers and span end times spread over three window steps."""
    messages = []
    for _ in range(draw(st.integers(2, 5))):
        touches = []
        for entity in draw(st.lists(st.sampled_from(MERGE_ENTITIES), min_size=1, max_size=3, unique=True)):
            when = draw(st.floats(0, 179, allow_nan=False))
            touches.append(Touch(
                entity=entity, services=draw(st.lists(st.sampled_from(MERGE_CALLERS), max_size=2, unique=True)),
                spans=draw(st.integers(1, 50)), errors=draw(st.integers(0, 1)), internet_spans=draw(st.integers(0, 1)),
                first_seen=T0 + when - draw(st.floats(0, 5, allow_nan=False)), last_seen=T0 + when,
                trace_ids=draw(st.lists(st.sampled_from([f"{i:032x}" for i in range(8)]), max_size=3, unique=True))))
        messages.append(TraceBatch(touches))
    return messages


@settings(max_examples=150, deadline=None)
@given(trace_messages())
def test_trace_messages_taken_together_judge_as_they_would_one_by_one(messages):
    one_by_one, together = Harness(), Harness()
    for h in (one_by_one, together):
        h.feed(h.router.finding(finding("f-bucket", BUCKET)))
        h.feed(h.router.finding(finding("f-vault", VAULT, severity="critical")))
    for batch in messages:
        one_by_one.traces(*batch.touches)
    merged = merge_trace_batches(messages, together.settings.window_step_s, together.settings.max_trace_ids)
    together.traces(*merged.touches)

    assert len(merged.touches) <= sum(len(batch.touches) for batch in messages)
    assert sum(t.spans for t in merged.touches) == sum(t.spans for batch in messages for t in batch.touches)
    step = together.settings.window_step_s

    def judged(state):
        """What judging reads: windows, times, and callers by the window step they were last seen in."""
        return {"buckets": state.buckets, "first_seen": state.first_seen, "clock": state.clock,
                "last_exercised": state.last_exercised,
                **{k: {who: seen - seen % step for who, seen in getattr(state, k).items()} for k in ("callers", "via")}}

    for entity, state in one_by_one.store.items():
        assert judged(state) == judged(together.store[entity]), entity
        seen = {trace_id for batch in messages for t in batch.touches if t.entity == entity for trace_id in t.trace_ids}
        assert set(together.store[entity].traces) <= seen
    one_by_one.tick(), together.tick()
    # Judged after every message or once for all of them, the path may differ (P3 then P2, or P2 at
    # once); where each finding ends must not.
    assert ends(one_by_one) == ends(together)


def ends(h: Harness) -> dict[str, tuple[bool, str]]:
    """Whether each finding is escalated at the end, and at which priority."""
    return {uid: (e["state"] != "resolved", e["priority"]) for uid in ("f-bucket", "f-vault") if (e := h.latest(uid))}


def test_a_priority_change_names_the_priority_it_replaces(estate):
    h = estate
    h.traces(touch(BUCKET, ["service:ledger"], 10, spans=50))
    h.tick()
    first = h.latest("f-bucket")
    h.traces(touch("service:payments-api", [], 12, internet=40),
             touch("service:ledger", ["service:payments-api"], 12),
             touch(BUCKET, ["service:ledger"], 13, spans=800))
    h.tick()
    upgrade = h.latest("f-bucket")
    assert first["state"] == "escalated" and "previous_priority" not in first
    assert upgrade["state"] == "updated" and upgrade["previous_priority"] == first["priority"] != upgrade["priority"]
