"""The worker's /metrics text as a Prometheus scraper parses it: escaped label values, exact counts."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from stream.metrics import Metrics


def parsed(metrics: Metrics) -> dict[str, list]:
    text = metrics.exposition().decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def test_a_hostile_label_value_is_escaped_and_reads_back_unchanged():
    metrics = Metrics(CollectorRegistry())
    hostile = 'in"put\\topic\nwith} a="fake" label'
    metrics.records_in.labels(hostile).inc()
    metrics.records_in.labels("plain").inc()
    samples = parsed(metrics)["hotpath_records_in"]
    assert {s.labels["topic"]: s.value for s in samples} == {hostile: 1, "plain": 1}
    assert all(set(s.labels) == {"topic"} for s in samples)


def test_large_counts_are_exact_integers():
    metrics = Metrics(CollectorRegistry())
    metrics.escalations.labels(priority="P1", state="escalated").inc(1_234_567)
    metrics.entity_events.labels(stream="traces").inc(123_456_789_012_345)
    samples = parsed(metrics)
    assert samples["hotpath_escalations"][0].value == 1_234_567
    assert samples["hotpath_escalations"][0].labels == {"priority": "P1", "state": "escalated"}
    assert samples["hotpath_entity_events"][0].value == 123_456_789_012_345, "every digit is kept"


def test_revoked_partitions_leave_the_lag_series():
    metrics = Metrics(CollectorRegistry())
    metrics.set_consumer_lag({("findings", 0): 7, ("findings", 1): 0})
    metrics.set_consumer_lag({("findings", 1): 3})
    lag = {(s.labels["topic"], s.labels["partition"]): s.value for s in parsed(metrics)["hotpath_consumer_lag_records"]}
    assert lag == {("findings", "1"): 3}


def test_the_latency_histogram_counts_every_entity_event_of_a_record_in_its_bucket():
    metrics = Metrics(CollectorRegistry())
    now = time.time()
    metrics.observe_correlated(now - 0.3, 3)  # a record of three entity events, produced 0.3 s ago
    metrics.observe_correlated(now - 4.0, 1)
    metrics.observe_correlated(now, 0)  # a tick: nothing applied, nothing observed
    metrics.observe_correlated(None, 2)  # no produce time: counted as correlated, no latency
    samples = parsed(metrics)
    assert samples["hotpath_entity_events_correlated"][0].value == 6
    latency = {(s.name, s.labels.get("le")): s.value for s in samples["hotpath_processing_latency_seconds"]}
    assert latency[("hotpath_processing_latency_seconds_count", None)] == 4
    assert [latency[("hotpath_processing_latency_seconds_bucket", le)] for le in ("0.25", "0.5", "2.5", "5.0", "+Inf")
            ] == [0, 3, 3, 4, 4]
    assert 4.89 < latency[("hotpath_processing_latency_seconds_sum", None)] < 5.5
