"""The worker's Faust consumer commits only what a stream processed (issue 16, point 6).

Faust's stream skips a message fetched before the latest rebalance, or one reaching it while a rebalance holds
the flow, and acks it as if processed: its offset became committable, and a commit during the revocation
could jump over records nobody reads again. The consumer must leave such a message unacknowledged (it is
fetched again from the committed offset), and still acknowledge what a stream did process.
"""

from __future__ import annotations

import faust
import pytest
from faust.types.tuples import ConsumerMessage

from stream.worker.faust_private import SCHEME, ProcessedOnlyConsumer

GENERATION = 7


@pytest.fixture
def app():
    app = faust.App("hotpath-unit-ack", broker=f"{SCHEME}://127.0.0.1:1", web_enabled=False)
    app.consumer_generation_id = GENERATION
    app.flow_control.resume()  # as between rebalances
    return app


def message(generation_id: int = GENERATION, processed: bool = False) -> ConsumerMessage:
    """A record of hotpath.entity-events as the consumer hands it to the streams; ``processed`` is what a
    stream marks on a message it takes."""
    fetched = ConsumerMessage("hotpath.entity-events", 0, 41, 0.0, 0, None, b"entity", b"[]", None,
                              generation_id=generation_id)
    fetched.tracked = processed
    return fetched


def test_the_worker_uses_the_consumer_that_commits_only_processed_records(app):
    assert isinstance(app.consumer, ProcessedOnlyConsumer)


def test_a_record_skipped_as_fetched_before_the_rebalance_is_not_acknowledged(app):
    skipped = message(generation_id=GENERATION - 1)
    app.consumer.ack(skipped)
    assert not skipped.acked


def test_a_record_skipped_while_the_rebalance_holds_the_flow_is_not_acknowledged(app):
    app.flow_control.suspend()
    skipped = message()
    app.consumer.ack(skipped)
    assert not skipped.acked


def test_a_record_processed_before_the_revocation_is_acknowledged_during_it(app):
    app.flow_control.suspend()  # Faust waits for the streams to ack what they hold, with the flow held
    processed = message(generation_id=GENERATION - 1, processed=True)
    app.consumer.ack(processed)
    assert processed.acked


def test_an_undecodable_record_dropped_in_the_flow_is_acknowledged(app):
    dropped = message()  # Faust acks a record its streams cannot decode, untracked, so the offset moves on
    app.consumer.ack(dropped)
    assert dropped.acked
