"""Inputs written in Kafka transactions: each commit marker takes an offset that holds no record, so the worker's
consumer meets real gaps, at the head of a fetch as well as inside one. It must commit over them (a stall would
hold every later record's offset back), while it never commits over a record no stream processed
(tests/broker/test_rebalance.py, stream/worker/continuity.py)."""

from __future__ import annotations

import pytest
from waiting import settle, wait_committed_to_end
from workers import HotpathProcess, final_states, scenario_records

from stream.demo.scenario import build_scenario
from stream.kafka.clients import producer

RECORDS_PER_TRANSACTION = 7


@pytest.mark.kafka
def test_inputs_written_in_transactions_are_all_processed_and_committed_to_their_end(hotpath_settings, tmp_path):
    settings = hotpath_settings
    scenario = build_scenario(seed=11, scale=1, minutes=6)
    records = scenario_records(settings, scenario)
    writer = producer(settings, transactional_id=f"{settings.app_id}-writer")
    writer.init_transactions(30)
    for start in range(0, len(records), RECORDS_PER_TRANSACTION):
        writer.begin_transaction()
        for topic, key, value in records[start:start + RECORDS_PER_TRANSACTION]:
            writer.produce(topic, key=key, value=value)
        writer.commit_transaction(30)

    with HotpathProcess("worker", settings, tmp_path) as worker:
        worker.wait_ready()
        events = settle(settings, scenario.expected.escalated)
        for topic in (settings.topic_findings, settings.topic_traces, settings.topic_alerts, settings.topic_assets):
            wait_committed_to_end(settings, settings.app_id, topic, transactional=True)
        wait_committed_to_end(settings, settings.app_id, settings.topic_entity_events)

    assert final_states(events) == {uid: ("escalated", p) for uid, p in scenario.expected.escalated.items()}
