"""No exception may half-apply or lose an escalation (issue 13), in the running worker: forged times and a
poisoned entity event reach the dead-letter topic while every honest escalation stays as it was (no
resolved storm), and escalations the broker refused are not lost by committing the records that caused
them. An entity that cannot be judged, without a broker: tests/unit/correlate/test_unjudgeable_entity.py."""

from __future__ import annotations

import time

import orjson
import pytest
from brokers import allow_large_records
from dead_letters import dead_letters_of
from hostile import YEAR_2100, YEAR_10000_IN_UTC, alert_record, falco, span_ending_at
from waiting import settle, wait_until
from workers import HotpathProcess, assert_exactly_once, final_states, publish_scenario, read_topic, records_in

from stream.demo.scenario import build_scenario
from stream.ingest.entity_events import EntityPartitioner
from stream.ingest.formats.findings import decode_findings
from stream.kafka.clients import producer
from stream.worker.app import entity_partitions


@pytest.mark.kafka
def test_worker_parks_forged_times_and_a_poisoned_entity_event_and_keeps_every_honest_escalation(
        hotpath_settings, tmp_path):
    settings = hotpath_settings
    scenario = build_scenario(seed=11, scale=1, minutes=6)
    publish_scenario(settings, scenario)
    expected = {uid: ("escalated", priority) for uid, priority in scenario.expected.escalated.items()}
    victim_uid = min(scenario.expected.escalated)
    victim = next(f.resources[0] for raw in scenario.findings for f in decode_findings(raw) if f.uid == victim_uid)
    with HotpathProcess("worker", settings, tmp_path) as worker:
        worker.wait_ready()
        settle(settings, scenario.expected.escalated)

        writer = producer(settings)
        writer.produce(settings.topic_alerts, key=b"alert-2100", value=orjson.dumps(falco(YEAR_2100, uuid="f-2100")))
        writer.produce(settings.topic_traces, key=b"span-2100", value=span_ending_at(YEAR_2100))
        year_10000 = {**falco(0, uuid="f-10000"), "time": YEAR_10000_IN_UTC}
        writer.produce(settings.topic_alerts, key=b"alert-10000", value=orjson.dumps(year_10000))
        poison = orjson.dumps([[victim, alert_record("poison", victim, YEAR_10000_IN_UTC)]])
        partition = EntityPartitioner(entity_partitions(settings)).partition(victim)
        writer.produce(settings.topic_entity_events, key=b"poison", value=poison, partition=partition)
        writer.produce(settings.topic_entity_events, key=b"not-json", value=b"{oops", partition=partition)
        writer.produce(settings.topic_entity_events, key=b"not-pairs", value=b'[["only an entity"]]',
                       partition=partition)
        assert writer.flush(30) == 0
        dead = dead_letters_of(settings, {b"alert-2100", b"span-2100", b"alert-10000", b"poison", b"not-json",
                                          b"not-pairs"})
        time.sleep(5)  # ticks run every second: a poisoned clock would resolve everything now
        events = [value for _, value in read_topic(settings, settings.topic_escalations, idle=4, timeout=60)]
        assert worker.proc.poll() is None, worker.log_tail()

    assert "event time 2100-01-01T00:00:00.000Z is implausible: more than 300 s ahead" in dead[b"alert-2100"]["reason"]
    assert "event time 2100-01-01T00:00:00.0" in dead[b"span-2100"]["reason"]
    assert "is out of range once converted to UTC" in dead[b"alert-10000"]["reason"]
    assert all(dead[key]["stage"] == "decode" for key in (b"alert-2100", b"span-2100", b"alert-10000"))
    parked = dead[b"poison"]
    assert parked["stage"] == "correlate" and "year 10000 is out of range" in parked["reason"]
    assert (parked["origin"]["topic"], parked["origin"]["partition"]) == (settings.topic_entity_events, partition)
    assert orjson.loads(parked["value"])[0] == victim
    assert dead[b"not-json"]["reason"].startswith("not an entity-events record: not JSON")
    assert dead[b"not-pairs"]["reason"] == ("not an entity-events record: expected a JSON array of "
                                            "[entity id, event object] pairs")
    assert dead[b"not-pairs"]["value"] == '[["only an entity"]]' and dead[b"not-pairs"]["stage"] == "correlate"
    assert not [e for e in events if e["state"] == "resolved"], "honest escalations were resolved"
    assert final_states(events) == expected
    assert_exactly_once(events)


BROKER_DEFAULT_MAX_MESSAGE_BYTES = 1048588


@pytest.mark.kafka
def test_records_whose_escalations_the_broker_refused_are_read_again_after_a_restart(hotpath_settings, tmp_path):
    settings = hotpath_settings
    scenario = build_scenario(seed=11, scale=1, minutes=6)
    publish_scenario(settings, scenario)
    inputs = len(scenario.assets) + len(scenario.findings) + len(scenario.trace_batches) + len(scenario.alerts)
    allow_large_records(settings, settings.topic_escalations, 64)  # every escalation is refused
    with HotpathProcess("worker", settings, tmp_path, name="refused") as worker:
        worker.wait_ready()
        wait_until(lambda: records_in(worker) >= inputs, "every input record is read")
        time.sleep(8)  # the worker tries to publish; offsets are committed every second
        worker.stop()  # a graceful stop commits what was acknowledged
    allow_large_records(settings, settings.topic_escalations, BROKER_DEFAULT_MAX_MESSAGE_BYTES)
    with HotpathProcess("worker", settings, tmp_path, name="again"):
        events = settle(settings, scenario.expected.escalated)
    assert final_states(events) == {uid: ("escalated", p) for uid, p in scenario.expected.escalated.items()}
    assert_exactly_once(events)
