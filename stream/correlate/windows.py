"""Event-time hopping windows kept by hand: a short ring of step-sized buckets per entity.

Faust's windowed tables expire by wall clock and lose backfilled data, so each entity keeps its
own :class:`~stream.correlate.state.Bucket` list inside its state, in ascending order of start. A
hopping window of ``size`` advancing by ``step`` is the sum of the buckets that end inside it. Writes
trim everything older than one window, so an entity's state never holds more than ``size / step``
buckets (15 by default) however long the stream runs.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from stream.correlate.state import Bucket
from stream.models import bucket_start


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


def add(buckets: list[Bucket], spec: WindowSpec, ts: float, spans: int, internet: int, now: float) -> bool:
    """Fold traffic at event time ``ts`` into its bucket; False when it is too late to count.

    A record counts while its bucket is still within the window plus the allowed lateness of
    ``now`` (the entity's latest event time).
    """
    start = spec.bucket_start(ts)
    if start < spec.window_start(now) - spec.allowed_lateness_s:
        return False
    for bucket in reversed(buckets):
        if bucket.start == start:
            bucket.spans += spans
            bucket.internet_spans += internet
            break
        if bucket.start < start:
            buckets.insert(buckets.index(bucket) + 1, Bucket(start, spans, internet))
            break
    else:
        buckets.insert(0, Bucket(start, spans, internet))
    trim(buckets, spec, max(now, ts))
    return True


def trim(buckets: list[Bucket], spec: WindowSpec, now: float) -> None:
    """Drop buckets that no window ending at or after ``now`` can still see (minus lateness)."""
    horizon = spec.window_start(now) - spec.allowed_lateness_s
    drop = 0
    while drop < len(buckets) and buckets[drop].start < horizon:
        drop += 1
    if drop:
        del buckets[:drop]


def totals(buckets: list[Bucket], spec: WindowSpec, now: float) -> tuple[int, int]:
    """(spans, internet_spans) in the hopping window that contains ``now``."""
    start = spec.window_start(now)
    end = spec.bucket_start(now) + spec.step_s
    spans = internet = 0
    for bucket in buckets:
        if start <= bucket.start < end:
            spans += bucket.spans
            internet += bucket.internet_spans
    return spans, internet


class LowWatermark:
    """Event time that no single record, partition or source can move for the others.

    Event time is the producers' word, so one forged record dated 2100 must not make every finding
    look unexercised. Each source (an event kind on one partition) vouches only for the time of its
    ``quorum``-th latest distinct record, so one record moves nothing; time is the minimum over the
    live sources, so one partition or source cannot drag the rest; and it never goes back. A source
    is live while it has delivered within the last ``idle_after`` observations of the clock: a quiet
    source (alerts come rarely) does not hold time back for ever, and without wall time (replay) the
    answer depends only on the records and their order.
    """

    def __init__(self, quorum: int = 2, idle_after: int = 1000) -> None:
        self.quorum = quorum
        self.idle_after = idle_after
        self.value = float("-inf")
        self._latest: dict[Hashable, list[float]] = {}  # source -> its `quorum` latest distinct times, ascending
        self._delivered: dict[Hashable, int] = {}  # source -> observation count when it last delivered
        self._count = 0

    def observe(self, source: Hashable, ts: float) -> None:
        self._count += 1
        self._delivered[source] = self._count
        latest = self._latest.setdefault(source, [])
        if ts not in latest and (len(latest) < self.quorum or ts > latest[0]):
            bisect.insort(latest, ts)
            del latest[: len(latest) - self.quorum]
        vouched = [times[0] for key, times in self._latest.items()
                   if len(times) == self.quorum and self._count - self._delivered[key] <= self.idle_after]
        if vouched:
            self.value = max(self.value, min(vouched))

    def forget(self, lost: Callable[[Hashable], bool]) -> None:
        """Stop counting the sources ``lost`` says this worker no longer reads (revoked partitions)."""
        for source in [s for s in self._latest if lost(s)]:
            del self._latest[source], self._delivered[source]
