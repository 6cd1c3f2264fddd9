"""A live worker and event time: stale spans and alerts go to the dead-letter topic, honest records escalate."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import orjson
import pytest
from hostile import AGE_REASON, falco, span_ending_at
from workers import HotpathProcess, final_states, publish, read_topic, scenario_records

from stream.demo.scenario import build_scenario, start_ending_at
from stream.settings import Settings


@pytest.mark.kafka
def test_a_live_worker_dead_letters_stale_spans_and_alerts_and_escalates_the_honest_records(hotpath_settings,
                                                                                            tmp_path):
    # The worker with hotpath's own past bound, not the tests' wide one.
    settings = hotpath_settings.model_copy(update={"max_event_age_s": Settings.model_fields["max_event_age_s"].default})
    now = time.time()
    scenario = build_scenario(seed=11, minutes=4, start=start_ending_at(now, 4))
    stale = now - settings.max_event_age_s - 3600
    # One of the story's Prowler findings, re-dated a month back as an old scan that is still open.
    old_uid, old_finding = next((uid, document) for uid, document in prowler_findings(scenario)
                                if uid in scenario.expected.escalated)
    old_finding["time"] -= 30 * 24 * 3600
    old_finding.pop("time_dt", None)
    records = scenario_records(settings, scenario)
    records = [record for record in records if old_uid.encode() not in record[2]]
    records[len(scenario.assets):len(scenario.assets)] = [(settings.topic_findings, b"month-old-finding",
                                                           orjson.dumps(old_finding))]
    records += [(settings.topic_alerts, b"stale-alert", orjson.dumps(falco(stale))),
                (settings.topic_traces, b"stale-span", span_ending_at(stale, bucket="finpay-prod-statements"))]
    publish(settings, records)
    with HotpathProcess("worker", settings, tmp_path) as worker:
        worker.wait_ready()
        wanted = {uid: ("escalated", priority) for uid, priority in scenario.expected.escalated.items()}
        escalations = read_topic(settings, settings.topic_escalations, timeout=120,
                                 until=lambda found: final_states([value for _, value in found]) == wanted)
        dead = dict(read_topic(settings, settings.topic_dlq, idle=5, timeout=30))

    assert final_states([value for _, value in escalations]) == wanted, worker.log_tail()
    assert set(dead) == {b"stale-alert", b"stale-span"}
    assert dead[b"stale-alert"]["origin"]["topic"] == settings.topic_alerts
    assert dead[b"stale-span"]["origin"]["topic"] == settings.topic_traces
    for letter in dead.values():
        assert re.search(AGE_REASON, letter["reason"]), letter["reason"]


def prowler_findings(scenario) -> Iterator[tuple[str, dict]]:
    """(uid, document) of each Prowler finding in the scenario."""
    for raw in scenario.findings:
        document = orjson.loads(raw)
        for item in document if isinstance(document, list) else [document]:
            if "finding_info" in item:
                yield item["finding_info"]["uid"], item
