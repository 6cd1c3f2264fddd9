"""The engine the worker, replay and the tests share: the order a chunk is settled in, failures parked
with their origins, the tick cadence (restore, sweep and prune), reconciling after an assignment, and
replay judging in chunks ending where judging every record ends."""

from __future__ import annotations

import io

import orjson
import pytest
from engine_harness import BUCKET, T0, VAULT, Harness, at, finding, touch
from hostile import YEAR_10000_IN_UTC, alert_record
from workers import final_states

from stream.correlate.engine import SWEEP_EVERY_TICKS, Engine
from stream.correlate.lifecycle import escalation_uid
from stream.correlate.replay import replay
from stream.correlate.state import EncodedStates
from stream.demo.scenario import build_scenario
from stream.ingest.entity_events import TICK, encode_events
from stream.models import Alert, TraceBatch
from stream.settings import load_settings

PARTITION = 3


def internet_traffic_on_the_bucket() -> TraceBatch:
    return TraceBatch([touch("service:payments-api", [], 10, internet=40), touch(BUCKET, ["service:payments-api"], 12)])


def entity_events(engine: Engine, routed) -> bytes:
    """The ``hotpath.entity-events`` record ingest would write for what was routed."""
    records, too_large = encode_events(routed.events, engine.settings.max_event_record_bytes)
    assert len(records) == 1 and not too_large
    return records[0]


def exercised_bucket(table: EncodedStates) -> Engine:
    """An engine that has applied the bucket's finding and internet traffic on it, not yet settled."""
    engine = Engine(load_settings(), table, clock=lambda: T0)
    engine.apply(PARTITION, 1, entity_events(engine, engine.route("findings", finding("f-bucket", BUCKET))), "f")
    traffic = internet_traffic_on_the_bucket()
    engine.apply(PARTITION, 2, entity_events(engine, engine.router.traces(traffic)), "t")
    return engine


def escalated_bucket(table: EncodedStates) -> Engine:
    """An engine whose bucket finding is escalated by internet traffic, settled and written to ``table``."""
    engine = exercised_bucket(table)
    assert [e.state for e in engine.settle().escalations] == ["escalated"]
    engine.release()
    return engine


def test_states_are_written_only_when_the_caller_says_the_escalations_are_published():
    table = EncodedStates()
    engine = exercised_bucket(table)

    settlement = engine.settle()

    assert [(e.finding_uid, e.state, e.version) for e in settlement.escalations] == [
        ("f-bucket", "escalated", 1)]
    assert len(table) == 0, "a state was written before its escalation was published"
    engine.release()
    assert table[BUCKET].findings["f-bucket"].escalation.version == 1
    assert table[BUCKET].partition == PARTITION


def test_an_entity_that_fails_keeps_its_state_and_its_events_are_parked_with_their_origins():
    table = EncodedStates()
    engine = Engine(load_settings(), table, clock=lambda: T0)
    for offset, (uid, resource) in enumerate([("f-bucket", BUCKET), ("f-vault", VAULT)]):
        found = finding(uid, resource, severity="critical")
        engine.apply(PARTITION, offset, entity_events(engine, engine.route("findings", found)), uid)
    assert engine.settle().escalations == []  # held: nothing exercises them yet
    engine.release()
    before = table.data[BUCKET]
    poison = orjson.dumps([[BUCKET, alert_record("poison", BUCKET, YEAR_10000_IN_UTC)]])
    honest = Alert(uid="gd-1", source="guardduty", rule="Exfiltration:S3/AnomalousBehavior", severity="high",
                   entities=[VAULT], observed_at=at(30))
    engine.apply(PARTITION, 4, poison, origin="message at offset 4")
    engine.apply(PARTITION, 5, entity_events(engine, engine.route("alerts", honest)), "alert")
    engine.apply(PARTITION, 6, b"{oops", origin="message at offset 6")

    settlement = engine.settle()

    assert [(e.finding_uid, e.state) for e in settlement.escalations] == [("f-vault", "escalated")]
    parked = {p.origin: p for p in settlement.parked}
    assert set(parked) == {"message at offset 4", "message at offset 6"}
    assert "year 10000 is out of range" in parked["message at offset 4"].reason
    assert orjson.loads(parked["message at offset 4"].value)[0] == BUCKET
    assert parked["message at offset 6"].reason.startswith("not an entity-events record: not JSON")
    assert parked["message at offset 6"].value == b"{oops"
    assert [(count, "year 10000" in reason) for reason, count in settlement.failures] == [(1, True)]
    engine.release()
    assert table.data[BUCKET] == before, "the failed entity's state changed"
    assert table[VAULT].findings["f-vault"].escalation.version == 1


def test_a_redelivered_record_changes_nothing():
    table = EncodedStates()
    engine = escalated_bucket(table)
    traffic = internet_traffic_on_the_bucket()
    engine.apply(PARTITION, 2, entity_events(engine, engine.router.traces(traffic)), "t")
    assert engine.settle().escalations == []


def test_the_first_tick_after_an_assignment_restores_the_live_entities_of_its_partition():
    table = EncodedStates()
    escalated_bucket(table)
    recovered = Engine(load_settings(), dict(table), clock=lambda: T0)  # another worker, after a rebalance
    assert recovered.correlator.live == {}
    recovered.tick(PARTITION + 1)
    assert recovered.correlator.live == {}, "restored the entities of a partition it was not ticking"
    recovered.tick(PARTITION)
    assert recovered.correlator.live == {BUCKET: PARTITION}
    recovered.revoked({PARTITION})
    assert recovered.correlator.live == {}
    recovered.tick(PARTITION)
    assert recovered.correlator.live == {BUCKET: PARTITION}


def test_idle_entities_are_swept_and_facts_pruned_every_sweep_every_ticks_ticks():
    h = Harness(window_size_s=300, window_step_s=60, stale_windows=1)
    h.traces(touch("service:a", [], 0), touch("service:b", [], 1000), touch("service:b", [], 1001))
    ticks_so_far = 1  # the harness ticks once when its partition is assigned
    for _ in range(SWEEP_EVERY_TICKS - ticks_so_far - 1):
        h.tick()
    assert "service:a" in h.store, "swept before the cadence"
    h.tick()
    assert set(h.store) == {"service:b"}


def test_reconcile_raises_the_recovered_state_to_what_was_published_and_runs_once_per_assignment():
    table = EncodedStates()
    escalated_bucket(table)
    recovered = Engine(load_settings(), dict(table), clock=lambda: T0)
    event = {"escalation_uid": escalation_uid("f-bucket"), "finding_uid": "x", "resource": BUCKET,
             "state": "updated", "priority": "P1", "version": 2, "score": 90}
    assert recovered.needs_reconcile(PARTITION)
    assert recovered.reconcile(PARTITION, [event], owns=lambda resource: True) == 1
    assert not recovered.needs_reconcile(PARTITION)
    assert recovered.store[BUCKET].findings["f-bucket"].escalation.version == 2
    recovered.revoked({PARTITION})
    assert recovered.needs_reconcile(PARTITION)


def test_a_tick_record_judges_the_chunk_so_far_and_rescores_its_partition():
    table = EncodedStates()
    engine = exercised_bucket(table)
    assert engine.apply(PARTITION, 3, TICK, "tick") == 0
    assert engine.ticks == {PARTITION: 1}
    assert [e.state for e in engine.settle().escalations] == ["escalated"]


@pytest.fixture(scope="module")
def scenario_files(tmp_path_factory):
    return build_scenario(seed=11, scale=1, minutes=6).write_files(tmp_path_factory.mktemp("scenario"))


def test_replay_judging_in_chunks_ends_where_judging_every_record_ends(scenario_files):
    settings = load_settings()
    per_record = final_states(list(replay(settings, **scenario_files, chunk_records=1)))
    chunked = final_states(list(replay(settings, **scenario_files)))
    assert per_record and chunked == per_record


def test_replay_routes_by_the_stream_a_file_is_given_as(scenario_files):
    errors = io.StringIO()
    events = list(replay(load_settings(), traces=scenario_files["traces"], alerts=scenario_files["findings"],
                         assets=scenario_files["assets"], errors=errors))
    assert events == [], "findings given as alerts were correlated as findings"
    assert "finding record in " in errors.getvalue() and ", given as alerts" in errors.getvalue()

