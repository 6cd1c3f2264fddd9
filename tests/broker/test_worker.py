"""The streaming job end to end on the real broker: escalations, held findings, resolution, scale-out,
and agreement with the offline replay of the same scenario."""

from __future__ import annotations

import json
import time

import orjson
import pytest
from jsonschema import Draft202012Validator, FormatChecker
from prometheus_client.parser import text_string_to_metric_families
from waiting import settle
from workers import HotpathProcess, final_states, publish_scenario, read_topic

from stream.correlate.replay import replay
from stream.demo.scenario import build_scenario
from stream.ingest.formats.findings import decode_findings
from stream.kafka.clients import producer
from stream.kafka.topics import apply_topics
from stream.settings import Settings

pytestmark = pytest.mark.kafka

SCHEMA = Draft202012Validator(json.loads((Settings().topics_dir / "schemas" / "escalation.schema.json").read_text()),
                              format_checker=FormatChecker())


@pytest.fixture(scope="module")
def scenario():
    return build_scenario(seed=11, scale=1, minutes=6)


def resolution_of(raw: bytes, uid: str) -> bytes:
    """The same Prowler finding, re-observed later as PASS: what a fixed resource looks like."""
    document = orjson.loads(raw)
    document = document[0] if isinstance(document, list) else document
    assert document["finding_info"]["uid"] == uid
    document["status_code"] = "PASS"
    document["time"] += 3600
    document.pop("time_dt", None)
    return orjson.dumps(document)


def test_worker_escalates_exercised_findings_holds_the_rest_and_resolves(hotpath_settings, scenario, tmp_path):
    settings = hotpath_settings
    publish_scenario(settings, scenario)
    expected = scenario.expected
    with HotpathProcess("worker", settings, tmp_path) as worker:
        worker.wait_ready()
        events = settle(settings, expected.escalated)
        for event in events:
            SCHEMA.validate(event)
        finals = final_states(events)
        assert finals == {uid: ("escalated", priority) for uid, priority in expected.escalated.items()}
        assert not (set(finals) & expected.held), "a finding nothing exercises was escalated"
        top = max(expected.internet_reached, key=lambda uid: (expected.escalated[uid] == "P1", uid))
        assert finals[top][1] == "P1"
        latest = [e for e in events if e["finding_uid"] == top][-1]
        assert any(r.startswith("reached from the internet via payments-api") for r in latest["reasons"])
        assert latest["evidence"]["trace_ids"] and latest["factors"]["exercised"]
        assert len({(e["finding_uid"], e["version"]) for e in events}) == len(events), "a version was emitted twice"

        # The source resolves the top finding: exactly one `resolved` event follows.
        raw = next(r for r in scenario.findings if any(f.uid == top for f in decode_findings(r)))
        client = producer(settings)
        client.produce(settings.topic_findings, value=resolution_of(raw, top))
        client.flush(10)
        resolved = read_topic(settings, settings.topic_escalations,
                              until=lambda rs: any(v["finding_uid"] == top and v["state"] == "resolved" for _, v in rs))
        mine = [v for _, v in resolved if v["finding_uid"] == top]
        assert mine[-1]["state"] == "resolved" and mine[-1]["version"] == max(e["version"] for e in mine)
        assert mine[-1]["reasons"][0].startswith("resolved at the source")
        assert sum(1 for v in mine if v["state"] == "resolved") == 1
        status, body = worker.get("/escalations")
        board = json.loads(body)["escalations"]
        assert status == 200 and top not in {e["finding_uid"] for e in board}
        assert {e["finding_uid"] for e in board} == set(expected.escalated) - {top}
        assert [e["priority"] for e in board] == sorted(e["priority"] for e in board), "top escalations come first"

        status, body = worker.get("/health")
        assert status == 200 and json.loads(body)["ready"] is True
        metrics = scrape(worker)
        assert metrics["hotpath_records_in_total", (("topic", settings.topic_findings),)] == len(scenario.findings) + 1
        assert metrics["hotpath_records_in_total", (("topic", settings.topic_traces),)] == len(scenario.trace_batches)
        assert metrics["hotpath_escalations_total", (("priority", "P1"), ("state", "escalated"))] >= 1
        assert metrics["hotpath_processing_latency_seconds_count", ()] == metrics[
            "hotpath_entity_events_correlated_total", ()] > 0
        # The resolution just read is committed within Faust's commit interval; then nothing lags.
        deadline = time.monotonic() + 30
        while set((lags := findings_lag(scrape(worker), settings)).values()) != {0} and time.monotonic() < deadline:
            time.sleep(0.3)
        assert len(lags) == 4 and set(lags.values()) == {0}, f"the worker has read and committed every finding: {lags}"


def scrape(worker: HotpathProcess) -> dict[tuple[str, tuple], float]:
    """The worker's /metrics as {(sample name, sorted labels): value}, parsed as Prometheus parses it."""
    status, body = worker.get("/metrics")
    assert status == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode()) for s in family.samples}


def findings_lag(metrics: dict, settings: Settings) -> dict[str, float]:
    """Consumer lag per partition of the findings topic."""
    return {dict(labels)["partition"]: value for (name, labels), value in metrics.items()
            if name == "hotpath_consumer_lag_records" and dict(labels)["topic"] == settings.topic_findings}


def test_two_workers_and_replay_agree_with_one_worker(hotpath_settings, kafka_bootstrap, scenario, tmp_path):
    one = hotpath_settings
    two = one.model_copy(update={name: f"two.{getattr(one, name)}" for name in Settings.model_fields
                                 if name.startswith("topic_")} | {"app_id": f"two-{one.app_id}"})
    apply_topics(two)
    publish_scenario(one, scenario)
    publish_scenario(two, scenario)
    expected = scenario.expected.escalated

    with HotpathProcess("worker", one, tmp_path, name="single"):
        single = final_states(settle(one, expected))
    with HotpathProcess("worker", two, tmp_path, name="pair-a"), HotpathProcess("worker", two, tmp_path, name="pair-b"):
        pair = final_states(settle(two, expected))
    files = scenario.write_files(tmp_path / "files")
    offline = final_states(list(replay(one, **files)))

    assert single == pair == offline == {uid: ("escalated", priority) for uid, priority in expected.items()}
