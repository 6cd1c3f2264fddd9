"""The worker's producer flush, which Faust awaits right before it commits input offsets (and before a
rebalance hands partitions over), returns only once the changelog writes handed to it are on the broker
(issue 16, point 6: a commit must never go past a state write that a crash would lose)."""

from __future__ import annotations

import asyncio

import pytest
from waiting import end_offsets

from stream.worker.faust_private import SCHEME

pytestmark = pytest.mark.kafka


async def flush_a_changelog_write(bootstrap: str, app_id: str, topic_name: str) -> tuple[bool, bool]:
    """Send one record the way a table writes its changelog, flush: was it acknowledged when flush returned,
    and had it failed?"""
    import faust

    app = faust.App(app_id, broker=f"{SCHEME}://{bootstrap}", web_enabled=False, topic_allow_declare=False)
    topic = app.topic(topic_name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    await app.producer.start()
    try:
        # A topic the producer has not seen yet: aiokafka first waits for its metadata (the broker creates
        # it and elects a leader), far longer than the 0.1 s Faust's own flush waits for a record.
        written = topic.send_soon(key=b"entity", value=b"state", partition=0)
        await app.producer.flush()
        return written.done(), written.done() and written.exception() is not None
    finally:
        await app.producer.stop()


def test_flush_returns_once_a_changelog_write_is_acknowledged(hotpath_settings, kafka_admin):
    settings = hotpath_settings
    topic = f"{settings.app_id}-flush-changelog"  # the fixture deletes what starts with the app id
    acknowledged, failed = asyncio.run(flush_a_changelog_write(settings.bootstrap_servers, settings.app_id, topic))
    assert acknowledged and not failed, "flush returned before the broker had the changelog write"
    assert end_offsets(settings, topic) == {0: 1}
