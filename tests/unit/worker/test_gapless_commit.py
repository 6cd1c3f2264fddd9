"""The worker's consumer never commits a partition past a record it has not processed (issue 16, point 6).

Faust skips, without acknowledging them, the records that reach a stream while a rebalance or a stop holds
the flow; the next assignment reads them again from the committed offset, unless a commit went past them.
These drive the consumer's offset choice directly; tests/broker/test_rebalance.py shows the loss on a group.
"""

from __future__ import annotations

import faust
import pytest
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from stream.worker.faust_private import SCHEME, GaplessConsumer

PARTITION = TP("hotpath.entity-events", 3)


@pytest.fixture
def consumer() -> GaplessConsumer:
    app = faust.App("gapless-commit", broker=f"{SCHEME}://127.0.0.1:9", web_enabled=False)
    consumer = app.consumer
    assert isinstance(consumer, GaplessConsumer)
    return consumer


def acknowledge(consumer: GaplessConsumer, *offsets: int) -> None:
    consumer._acked[PARTITION].extend(offsets)
    consumer._acked_index[PARTITION].update(offsets)


def test_a_commit_waits_while_the_record_at_the_committed_position_is_unprocessed(consumer):
    consumer._committed_offset[PARTITION] = 37  # the next record to read is 37: it was skipped
    acknowledge(consumer, 38, 39, 40)
    assert consumer._new_offset(PARTITION) is None  # Faust's own check lets a gap of one through: 41


def test_a_partition_never_committed_commits_only_from_its_start(consumer):
    consumer._committed_offset[PARTITION] = 0  # learned at the seek: the partition's beginning
    acknowledge(consumer, 4, 5)  # 0-3 were skipped while the worker stopped
    assert consumer._new_offset(PARTITION) is None  # Faust's own: 6, and 0-3 never read by anyone


def test_processed_records_from_the_committed_position_are_committed(consumer):
    consumer._committed_offset[PARTITION] = 37
    acknowledge(consumer, 37, 38, 40)
    assert consumer._new_offset(PARTITION) == 39


def test_a_record_no_stream_took_is_not_counted_as_processed_when_faust_acknowledges_it(consumer):
    # A stream marks each record it takes (tracked); one it skipped, because a rebalance held the flow or it was
    # fetched in an older generation, stays unmarked, yet Faust's stream acknowledges it all the same.
    consumer.app.topics.acking_topics.add(PARTITION.topic)
    consumer._committed_offset[PARTITION] = 37
    taken, skipped = (ConsumerMessage(PARTITION.topic, PARTITION.partition, offset, 0.0, 0, [], b"k", b"v", None)
                      for offset in (37, 38))
    taken.tracked = True
    for message in (taken, skipped):
        message.ack(consumer)
    assert consumer._new_offset(PARTITION) == 38  # Faust's own: 39, and 38 never read by anyone
