"""Event-time hopping windows kept by hand: a short ring of step-sized buckets per entity.

Faust's windowed tables expire by wall clock and lose backfilled data, so each entity keeps its
own buckets inside one plain table value: ``[[bucket_start, spans, errors, internet_spans], ...]``
in ascending order. A hopping window of ``size`` advancing by ``step`` is the sum of the buckets
that end inside it. Writes trim everything older than one window, so an entity's state never holds
more than ``size / step`` buckets (15 by default) however long the stream runs.
"""

from __future__ import annotations

from dataclasses import dataclass

Bucket = list  # [start: float, spans: int, errors: int, internet_spans: int]


def bucket_start(ts: float, step_s: float) -> float:
    """Start of the step-sized bucket that holds event time ``ts``."""
    return ts - (ts % step_s)


@dataclass(frozen=True, slots=True)
class WindowSpec:
    size_s: float
    step_s: float
    allowed_lateness_s: float

    def bucket_start(self, ts: float) -> float:
        return bucket_start(ts, self.step_s)

    def window_start(self, now: float) -> float:
        """First bucket start inside the hopping window that contains ``now``."""
        return self.bucket_start(now) + self.step_s - self.size_s


def add(buckets: list[Bucket], spec: WindowSpec, ts: float, spans: int, errors: int, internet: int,
        now: float) -> bool:
    """Fold traffic at event time ``ts`` into its bucket; False when it is too late to count.

    A record counts while its bucket is still within the window plus the allowed lateness of
    ``now`` (the entity's latest event time).
    """
    start = spec.bucket_start(ts)
    if start < spec.window_start(now) - spec.allowed_lateness_s:
        return False
    for bucket in reversed(buckets):
        if bucket[0] == start:
            bucket[1] += spans
            bucket[2] += errors
            bucket[3] += internet
            break
        if bucket[0] < start:
            buckets.insert(buckets.index(bucket) + 1, [start, spans, errors, internet])
            break
    else:
        buckets.insert(0, [start, spans, errors, internet])
    trim(buckets, spec, max(now, ts))
    return True


def trim(buckets: list[Bucket], spec: WindowSpec, now: float) -> None:
    """Drop buckets that no window ending at or after ``now`` can still see (minus lateness)."""
    horizon = spec.window_start(now) - spec.allowed_lateness_s
    drop = 0
    while drop < len(buckets) and buckets[drop][0] < horizon:
        drop += 1
    if drop:
        del buckets[:drop]


def totals(buckets: list[Bucket], spec: WindowSpec, now: float) -> tuple[int, int, int]:
    """(spans, errors, internet_spans) in the hopping window that contains ``now``."""
    start = spec.window_start(now)
    end = spec.bucket_start(now) + spec.step_s
    spans = errors = internet = 0
    for bucket in buckets:
        if start <= bucket[0] < end:
            spans += bucket[1]
            errors += bucket[2]
            internet += bucket[3]
    return spans, errors, internet
