"""In-process metrics rendered in the Prometheus text format by the worker's ``/metrics`` view.

Small on purpose: labelled counters and one latency histogram, cheap enough to bump per Kafka
message (never per span).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import defaultdict

LATENCY_BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


class Counter:
    def __init__(self, name: str, help_text: str, label: str) -> None:
        self.name, self.help, self.label = name, help_text, label
        self.values: dict[str, float] = defaultdict(float)

    def inc(self, label_value: str) -> None:
        self.values[label_value] += 1

    def inc_by(self, label_value: str, amount: float) -> None:
        self.values[label_value] += amount

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        lines += [f'{self.name}{{{self.label}="{value}"}} {count:g}' for value, count in sorted(self.values.items())]
        return lines


class Histogram:
    def __init__(self, name: str, help_text: str, buckets: tuple[float, ...]) -> None:
        self.name, self.help, self.buckets = name, help_text, buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        running = 0
        for bound, count in zip(self.buckets, self.counts, strict=False):
            running += count
            lines.append(f'{self.name}_bucket{{le="{bound}"}} {running}')
        lines.append(f'{self.name}_bucket{{le="+Inf"}} {self.count}')
        lines += [f"{self.name}_sum {self.sum:g}", f"{self.name}_count {self.count}"]
        return lines


class Metrics:
    def __init__(self) -> None:
        self.records_in = Counter("hotpath_records_in_total", "Kafka records read per input topic", "topic")
        self.decode_errors = Counter("hotpath_decode_errors_total", "records that could not be decoded", "topic")
        self.dlq_records = Counter("hotpath_dlq_records_total", "records sent to the dead-letter topic", "stage")
        self.touches = Counter("hotpath_entity_events_total", "entity events produced per input stream", "stream")
        self.escalations = Counter("hotpath_escalations_total", "escalation events by priority:state", "kind")
        self.latency = Histogram("hotpath_processing_latency_ms",
                                 "from an entity event being produced to its processing", LATENCY_BUCKETS_MS)

    def observe_latency(self, produced_at_s: float | None) -> None:
        if produced_at_s:
            self.latency.observe(max(0.0, (time.time() - produced_at_s) * 1000))

    def render(self, extra: list[str] = ()) -> str:
        lines: list[str] = []
        for metric in (self.records_in, self.decode_errors, self.dlq_records, self.touches, self.escalations,
                       self.latency):
            lines += metric.render()
        lines += extra
        return "\n".join(lines) + "\n"
