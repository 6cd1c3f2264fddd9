"""The one check every decoder applies to an event time: is it a time hotpath can believe?

Event time comes from the records, so an attacker who can write one record chooses it. A time that
cannot be written back as RFC 3339 (``9999-12-31T23:59:59-23:00`` is year 10000 in UTC) would fail
later, half-way through building an escalation; a far-future time would drag the correlator's clock
forward for everyone. Both are refused when the record is decoded, so they reach the dead-letter
topic with the reason instead of the state.

:class:`TimeBounds` is the plausible range: always within what ``datetime`` can represent, and in
the worker also no later than the wall clock plus the allowed skew (``HOTPATH_MAX_CLOCK_SKEW_S``).
Runtime evidence (spans, alerts) must moreover be no older than ``HOTPATH_MAX_EVENT_AGE_S`` before
the wall clock: evidence that old lies beyond the input topics' retention and every window, so it
can only be a replayed or forged record. Findings are exempt from that past bound on purpose: a
CSPM finding first observed weeks ago and still open is honest input (Security Hub's first pull
returns findings whose UpdatedAt is old), and a finding's time never moves the correlator's clock.
``hotpath replay`` has no wall clock and derives its bounds from the data (see stream.commands.replay).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from stream.models import Asset, DecodeError, NormalizedRecord, Touch, epoch_to_rfc3339

# Epoch seconds that convert back to an RFC 3339 UTC text (years 1 to 9999).
EARLIEST_REPRESENTABLE = datetime(1, 1, 2, tzinfo=UTC).timestamp()
LATEST_REPRESENTABLE = datetime(9999, 12, 30, tzinfo=UTC).timestamp()


@dataclass(frozen=True, slots=True)
class TimeBounds:
    """Event times outside ``[earliest, latest]`` (epoch seconds) are refused with a reason."""

    earliest: float = EARLIEST_REPRESENTABLE
    latest: float = LATEST_REPRESENTABLE
    why_earliest: str = "before year 1"
    why_latest: str = "after year 9999"

    @classmethod
    def ahead_of(cls, now: float, skew_s: float) -> TimeBounds:
        """Times no later than ``now`` plus the clock skew allowed between producers and hotpath."""
        return cls(latest=min(LATEST_REPRESENTABLE, now + skew_s),
                   why_latest=f"more than {skew_s:g} s ahead of the clock (HOTPATH_MAX_CLOCK_SKEW_S)")

    @classmethod
    def recent(cls, now: float, skew_s: float, max_age_s: float) -> TimeBounds:
        """Times no later than ``now`` plus the skew and no older than ``max_age_s`` before ``now``."""
        return replace(cls.ahead_of(now, skew_s), earliest=max(EARLIEST_REPRESENTABLE, now - max_age_s),
                       why_earliest=f"more than {max_age_s:g} s before the clock (HOTPATH_MAX_EVENT_AGE_S)")

    @classmethod
    def around(cls, reference: float, max_age_s: float) -> TimeBounds:
        """Times within ``max_age_s`` either side of ``reference`` (replay: the data's median time)."""
        why = f"more than {max_age_s:g} s from the data's median time (HOTPATH_MAX_EVENT_AGE_S)"
        return cls(max(EARLIEST_REPRESENTABLE, reference - max_age_s), min(LATEST_REPRESENTABLE, reference + max_age_s),
                   why, why)

    def check(self, ts: float, what: str) -> float:
        """``ts`` when it is plausible, else a DecodeError naming ``what`` and why it is refused."""
        if self.earliest <= ts <= self.latest:  # NaN fails both comparisons and is refused
            return ts
        why = self.why_latest if ts > self.latest else self.why_earliest
        raise DecodeError(f"{what}: event time {shown_time(ts)} is implausible: {why}")


def shown_time(ts: float) -> str:
    """An event time as a refusal shows it: RFC 3339 where it has one, else seconds since the epoch."""
    if EARLIEST_REPRESENTABLE <= ts <= LATEST_REPRESENTABLE:
        return epoch_to_rfc3339(ts)
    return f"{ts:.0f} s since the epoch"


ANY_TIME = TimeBounds()


def check_representable(value: datetime, what: str) -> None:
    """Refuse a parsed time whose UTC form is out of the datetime range (it could never be written back)."""
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise DecodeError(f"{what}: event time {value.isoformat()} is out of range once converted to UTC") from None
    ANY_TIME.check(value.timestamp(), what)


def check_times(record: NormalizedRecord, bounds: TimeBounds) -> None:
    """Refuse a decoded record whose event time (a touch: its first and last span end) is out of ``bounds``."""
    if isinstance(record, Touch):
        # Per message and entity on the trace path: a plausible touch costs one comparison chain (its
        # first span end is never after its last), and the text of a refusal is made only for one.
        if not bounds.earliest <= record.first_seen <= record.last_seen <= bounds.latest:
            what = f"spans on {record.entity[:80]}"
            bounds.check(record.first_seen, what)
            bounds.check(record.last_seen, what)
    elif not isinstance(record, Asset):
        bounds.check(record.event_time, f"{record.kind} {record.uid[:80]}")


def wall_clock_bounds(skew_s: float, clock: Callable[[], float],
                      max_age_s: float | None = None) -> Callable[[], TimeBounds]:
    """The worker's bounds, taken afresh per record: no later than ``clock()`` plus ``skew_s`` and, with
    ``max_age_s`` (runtime evidence, not findings), no older than ``max_age_s`` before ``clock()``."""
    if max_age_s is None:
        return lambda: TimeBounds.ahead_of(clock(), skew_s)
    return lambda: TimeBounds.recent(clock(), skew_s, max_age_s)
