"""A stream's partition sees each fetched record once, in order, from where its consumer last sought (issue 16,
point 6): a fetch that straddles a seek is refetched, not taken for a gap; a real gap is confirmed by refetching."""

from __future__ import annotations

from stream.worker.continuity import Continuity, Verdict

PARTITION = ("hotpath.entity-events", 7)


def sought_at(offset: int) -> Continuity:
    continuity = Continuity()
    continuity.sought(PARTITION, offset)
    return continuity


def test_the_records_from_the_sought_offset_are_delivered_in_order():
    continuity = sought_at(305)
    verdicts = [continuity.judge(PARTITION, offset, fetched_after_seek=offset > 305) for offset in (305, 306, 307)]
    assert verdicts == [(Verdict.DELIVER, None)] * 3


def test_a_stale_fetch_after_a_seek_is_fetched_again_not_taken_for_a_gap():
    # The partition was sought back to its committed offset 305 while a fetch from its old position was on its
    # way: 331 arrives first. Faust took 305-330 for offsets with no records and committed over them.
    continuity = sought_at(305)
    assert continuity.judge(PARTITION, 331, fetched_after_seek=False) == (Verdict.REFETCH, None)
    assert continuity.expected[PARTITION] == 305  # where the consumer seeks to fetch again
    assert continuity.judge(PARTITION, 305, fetched_after_seek=False) == (Verdict.DELIVER, None)


def test_a_jump_found_again_when_fetched_from_the_expected_offset_is_a_real_gap():
    # A compacted topic, or the commit marker of a transaction: 40-41 hold no record.
    continuity = sought_at(40)
    assert continuity.judge(PARTITION, 42, fetched_after_seek=False) == (Verdict.REFETCH, None)
    assert continuity.judge(PARTITION, 42, fetched_after_seek=False) == (Verdict.DELIVER, 40)
    assert continuity.judge(PARTITION, 43, fetched_after_seek=True) == (Verdict.DELIVER, None)


def test_a_jump_within_one_fetch_made_after_the_last_seek_is_the_brokers_own_gap():
    continuity = sought_at(10)
    continuity.judge(PARTITION, 10, fetched_after_seek=False)
    assert continuity.judge(PARTITION, 14, fetched_after_seek=True) == (Verdict.DELIVER, 11)
    assert continuity.expected[PARTITION] == 15


def test_records_already_delivered_since_the_last_seek_are_dropped_as_duplicates():
    continuity = sought_at(5)
    for offset in (5, 6, 7):
        continuity.judge(PARTITION, offset, fetched_after_seek=offset > 5)
    assert continuity.judge(PARTITION, 6, fetched_after_seek=False) == (Verdict.DUPLICATE, None)
    continuity.sought(PARTITION, 6)  # a rebalance sought it back: 6 is read again
    assert continuity.judge(PARTITION, 6, fetched_after_seek=False) == (Verdict.DELIVER, None)


def test_a_partition_sought_to_its_reset_policy_takes_whatever_comes_first():
    continuity = Continuity()
    continuity.sought(PARTITION, None)
    assert continuity.judge(PARTITION, 1234, fetched_after_seek=False) == (Verdict.DELIVER, None)
    assert continuity.judge(PARTITION, 1236, fetched_after_seek=False) == (Verdict.REFETCH, None)


def test_an_assigned_partition_delivers_nothing_until_it_is_sought_to_its_committed_offset():
    continuity = sought_at(60)
    continuity.assigned([PARTITION])  # a rebalance; what comes before the seek may be from anywhere
    assert PARTITION in continuity.unsought and PARTITION not in continuity.expected
    continuity.sought(PARTITION, 65)
    assert PARTITION not in continuity.unsought
    assert continuity.judge(PARTITION, 65, fetched_after_seek=False) == (Verdict.DELIVER, None)


def test_a_jump_seen_before_a_reassignment_does_not_confirm_the_same_jump_after_it():
    continuity = sought_at(40)
    assert continuity.judge(PARTITION, 42, fetched_after_seek=False) == (Verdict.REFETCH, None)
    continuity.assigned([PARTITION])  # a rebalance before the refetch came back
    continuity.sought(PARTITION, 40)
    assert continuity.judge(PARTITION, 42, fetched_after_seek=False) == (Verdict.REFETCH, None)
