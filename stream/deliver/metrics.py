"""The deliver metrics of the catalog (README, "Operating"), in a prometheus_client registry of their own.

The registry also carries the process and Python metrics (see :func:`stream.metrics.process_registry`),
as the worker's does, so both processes expose one metrics system and one set of process series.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from stream.metrics import process_registry

REQUEST_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class DeliveryMetrics:
    """The deliver service's counters, request times, backlogs and readiness."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry = registry if registry is not None else process_registry()
        self.records = Counter("hotpath_deliver_records_total", "Escalation records consumed", registry=registry)
        self.delivered = Counter("hotpath_deliver_delivered_total", "Escalations a sink accepted", ["sink"],
                                 registry=registry)
        self.retries = Counter("hotpath_deliver_retries_total", "Webhook requests retried", ["sink"], registry=registry)
        self.skipped = Counter("hotpath_deliver_skipped_total", "Escalations a sink's lane passed by, and why",
                               ["sink", "reason"], registry=registry)
        self.dead_lettered = Counter("hotpath_deliver_dead_lettered_total", "Deliveries given up and dead-lettered",
                                     ["sink"], registry=registry)
        self.siem_published = Counter("hotpath_deliver_siem_published_total",
                                      "OCSF Detection Findings published to the SIEM topic", registry=registry)
        self.request_seconds = Histogram("hotpath_deliver_request_seconds", "One webhook request, connect to answer",
                                         ["sink"], buckets=REQUEST_BUCKETS_S, registry=registry)
        self.pending = Gauge("hotpath_deliver_pending", "Escalations waiting for that sink (read or not)", ["sink"],
                             registry=registry)
        self.consumer_lag = Gauge("hotpath_deliver_consumer_lag_records",
                                  "Records of the partition its slowest lane has not finished", ["topic", "partition"],
                                  registry=registry)
        self.ready = Gauge("hotpath_deliver_ready", "1 when the service is ready, 0 otherwise", registry=registry)

    def value(self, name: str, **labels: str) -> float:
        """One sample's current value, 0 when it has none yet (``value("hotpath_deliver_retries_total", sink="x")``)."""
        return self.registry.get_sample_value(name, labels) or 0.0

    def totals(self) -> dict[str, float]:
        """Each deliver counter summed over its labels, for the line logged at shutdown."""
        return {family.name: sum(sample.value for sample in family.samples if sample.name.endswith("_total"))
                for family in self.registry.collect()
                if family.type == "counter" and family.name.startswith("hotpath_deliver_")}
