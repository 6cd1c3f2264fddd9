"""The worker's metrics, written with prometheus_client and served as Prometheus text at ``/metrics``.

Prometheus conventions: one label per dimension, counters end in ``_total``, times in seconds. Each
:class:`Metrics` has a registry of its own that also carries the process_* and python_* metrics, so an
app made twice in one process (tests) never registers a metric twice. Counters are bumped per Kafka
message or per escalation, never per span; consumer lag, readiness and the context's size are read
when scraped (see stream.worker.web).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator, Mapping
from itertools import accumulate

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.utils import floatToGoString

# prometheus_client would add a `<name>_created` series beside every counter and histogram: noise in
# the Prometheus text format, which carries no creation times.
disable_created_metrics()

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # the text format every Prometheus scrapes
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def process_registry() -> CollectorRegistry:
    """A new registry with the process_* and python_* metrics prometheus_client's default one carries."""
    registry = CollectorRegistry()
    for collector in (ProcessCollector, PlatformCollector, GCCollector):
        collector(registry=registry)
    return registry


class CountedHistogram:
    """A Prometheus histogram whose one observation may count many times: every entity event of a Kafka
    record shares the record's produce time, so the correlate agent observes once per record with the
    record's event count (prometheus_client's Histogram counts one per call: one call per event)."""

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...],
                 registry: CollectorRegistry) -> None:
        self.name, self.documentation, self.buckets = name, documentation, buckets
        self._counts = [0] * (len(buckets) + 1)  # per bucket, not cumulative; the last is +Inf
        self._sum = 0.0
        registry.register(self)

    def observe(self, value: float, times: int = 1) -> None:
        """``times`` observations of ``value``."""
        self._counts[bisect_left(self.buckets, value)] += times  # a bucket holds values <= its bound
        self._sum += value * times

    def collect(self) -> Iterator[HistogramMetricFamily]:
        bounds = [floatToGoString(bound) for bound in self.buckets] + ["+Inf"]
        yield HistogramMetricFamily(self.name, self.documentation, sum_value=self._sum,
                                    buckets=list(zip(bounds, accumulate(self._counts), strict=True)))


class Metrics:
    """The worker's catalog of metrics (README, "Operating the worker")."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry = registry if registry is not None else process_registry()
        self.records_in = Counter("hotpath_records_in_total", "Kafka records read per input topic",
                                  ["topic"], registry=registry)
        self.decode_errors = Counter("hotpath_decode_errors_total", "Input records that could not be decoded",
                                     ["topic"], registry=registry)
        self.dlq_records = Counter("hotpath_dlq_records_total", "Records sent to the dead-letter topic",
                                   ["stage"], registry=registry)
        self.entity_events = Counter("hotpath_entity_events_total", "Entity events produced per input stream",
                                     ["stream"], registry=registry)
        self.correlated = Counter("hotpath_entity_events_correlated_total",
                                  "Entity events the correlate stage has applied", registry=registry)
        self.escalations = Counter("hotpath_escalations_total", "Escalation events published",
                                   ["priority", "state"], registry=registry)
        self.latency = CountedHistogram("hotpath_processing_latency_seconds",
                                        "From an entity event being produced to its being applied",
                                        LATENCY_BUCKETS_S, registry)
        self.consumer_lag = Gauge("hotpath_consumer_lag_records",
                                  "Records of an assigned partition not yet processed and committed",
                                  ["topic", "partition"], registry=registry)
        self.ready = Gauge("hotpath_worker_ready", "1 when the worker is ready (as /health/ready says), else 0",
                           registry=registry)
        self.feed_records = Counter("hotpath_feed_records_total",
                                    "Records of the topics every worker reads in full (the shared context, the "
                                    "policy), by outcome: applied, unused or skipped (could not be applied)",
                                    ["feed", "outcome"], registry=registry)
        self.context_entries = Gauge("hotpath_context_entries",
                                     "Facts in the shared context: assets, call edges, internet entries, alerts",
                                     registry=registry)

    def observe_correlated(self, produced_at_s: float | None, events: int) -> None:
        """The ``events`` entity events of one Kafka record applied; ``produced_at_s`` is when it was produced."""
        if events:
            self.correlated.inc(events)
            if produced_at_s:
                self.latency.observe(max(0.0, time.time() - produced_at_s), events)

    def set_consumer_lag(self, lags: Mapping[tuple[str, int], int]) -> None:
        """Replace the lag series with ``{(topic, partition): records}``: revoked partitions drop out."""
        self.consumer_lag.clear()
        for (topic, partition), records in lags.items():
            self.consumer_lag.labels(topic=topic, partition=str(partition)).set(records)

    def exposition(self) -> bytes:
        """Every metric of the registry in the Prometheus text format (:data:`CONTENT_TYPE`)."""
        return generate_latest(self.registry)
