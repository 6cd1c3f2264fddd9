"""Which fetched records a partition's stream may see: each one once, in order, from where the consumer last sought.

Faust's consumer hands its streams what a fetch returned, and a fetch can straddle a seek: records fetched from
the old position arrive after the partition was moved back to its committed offset during a rebalance. Faust
then took the jump from the committed offset to those records for a gap with no records in it, committed over
it, and the records in between were never processed (tests/broker/test_rebalance.py lost findings that way).

A jump forward is not always false: a compacted topic, or one written in transactions, has offsets with no
record. So a jump at the head of a fetch is checked by fetching again from the expected offset: if the same
record comes first again, the offsets between hold no record; anything else was a stale fetch. Within one fetch
made after the last seek, the broker's own order is trusted.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from enum import Enum


class Verdict(Enum):
    DELIVER = "deliver"  # the next record of the partition
    DUPLICATE = "duplicate"  # already delivered since the last seek: drop it
    REFETCH = "refetch"  # a jump not yet checked: seek back to the expected offset, drop the rest of this fetch


class Continuity:
    """Per partition, the offset the stream expects next, and the jump being checked."""

    def __init__(self) -> None:
        self.expected: dict[Hashable, int] = {}
        self.checking: dict[Hashable, tuple[int, int]] = {}  # partition -> (expected, offset found instead)
        self.unsought: set[Hashable] = set()  # assigned, and not yet sought to where its group stands

    def assigned(self, partitions: Iterable[Hashable]) -> None:
        """A rebalance gave this worker ``partitions``: nothing of theirs is delivered until they are sought
        to their committed offsets, so what an earlier owner, or this worker before, left off is read from there."""
        for partition in partitions:
            self.expected.pop(partition, None)
            self.checking.pop(partition, None)  # a jump seen while it was last held confirms nothing now
            self.unsought.add(partition)

    def sought(self, partition: Hashable, offset: int | None) -> None:
        """The consumer moved ``partition`` to ``offset`` (None: to wherever its reset policy says)."""
        self.unsought.discard(partition)
        if offset is None or offset < 0:
            self.expected.pop(partition, None)
        else:
            self.expected[partition] = offset

    def judge(self, partition: Hashable, offset: int, *, fetched_after_seek: bool) -> tuple[Verdict, int | None]:
        """What to do with the record at ``offset``, and where the offsets with no record before it begin (or None).

        ``fetched_after_seek``: the record follows another of the same fetch, made after the last seek.
        """
        expected = self.expected.get(partition)
        if expected is not None and offset < expected:
            return Verdict.DUPLICATE, None
        gap_from = None
        if expected is not None and offset > expected:
            if not fetched_after_seek and self.checking.get(partition) != (expected, offset):
                self.checking[partition] = (expected, offset)
                return Verdict.REFETCH, None
            gap_from = expected  # in one fetch, or fetched again from the expected offset and first again
        self.checking.pop(partition, None)
        self.expected[partition] = offset + 1
        return Verdict.DELIVER, gap_from
