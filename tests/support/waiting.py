"""Waiting on what real processes do: a condition to hold, the escalations of the scenario to settle, or a
consumer group to commit what a topic holds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

from confluent_kafka import TopicPartition
from workers import final_states, read_topic

from stream.kafka.clients import consumer
from stream.settings import Settings


def wait_until(condition, what: str, timeout: float = 120.0) -> float:
    """Poll ``condition`` until true; returns the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting until {what}")
        time.sleep(0.2)
    return time.monotonic() - started


def settle(settings: Settings, expected: dict[str, str], timeout: float = 120.0) -> list[dict]:
    """Read escalations until the scenario's expected end state shows (or time runs out), then until
    the topic has been quiet for a few seconds, so late or extra events are seen too."""
    wanted = {uid: ("escalated", priority) for uid, priority in expected.items()}

    def done(records):
        return final_states([value for _, value in records]) == wanted

    records = read_topic(settings, settings.topic_escalations, until=done, timeout=timeout)
    records += read_topic(settings, settings.topic_escalations, idle=4, timeout=30)[len(records):]
    return [value for _, value in records]


def run_loop_until(loop: asyncio.AbstractEventLoop, done: Callable[[], bool], what: str,
                   timeout_s: float = 60) -> None:
    """Run ``loop`` (where the feed applies its batches) until ``done()``."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:.0f}s: {what}")
        loop.run_until_complete(asyncio.sleep(0.05))


def partitions_of(settings: Settings, topic: str) -> list[int]:
    """The partition numbers of ``topic``."""
    client = consumer(settings, group_id=f"test-metadata-{time.monotonic_ns()}")
    try:
        return sorted(client.list_topics(topic, timeout=10).topics[topic].partitions)
    finally:
        client.close()


def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """The offset after the last record of each partition of ``topic`` (its high watermark)."""
    client = consumer(settings, group_id=f"test-watermarks-{time.monotonic_ns()}")
    try:
        return {partition: client.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1]
                for partition in partitions_of(settings, topic)}
    finally:
        client.close()


def committed_offsets(settings: Settings, group: str, topic: str, partitions: Iterable[int]) -> dict[int, int]:
    """The offsets ``group`` has committed on ``topic`` (-1 where it has committed none), asked without joining it."""
    client = consumer(settings, group_id=group)
    try:
        answers = client.committed([TopicPartition(topic, partition) for partition in partitions], timeout=10)
        return {answer.partition: answer.offset for answer in answers}
    finally:
        client.close()


def wait_committed_to_end(settings: Settings, group: str, topic: str, timeout: float = 60.0,
                          transactional: bool = False) -> dict[int, int]:
    """Wait until ``group`` has committed every record ``topic`` holds now (records added later may wait);
    returns the offsets it committed. The error says which partitions stopped where.

    ``transactional``: the topic was written in transactions, so each partition ends with a commit marker, an
    offset no consumer is handed: the end is the offset of that marker."""
    ends = {partition: end - 1 if transactional and end > 0 else end
            for partition, end in end_offsets(settings, topic).items()}
    committed: dict[int, int] = {}

    def reached() -> bool:
        committed.update(committed_offsets(settings, group, topic, ends))
        return all(committed[partition] >= end for partition, end in ends.items() if end > 0)

    try:
        wait_until(reached, f"group {group} commits {topic} to its end", timeout)
    except AssertionError as exc:
        behind = {p: f"{committed.get(p)}/{end}" for p, end in ends.items() if committed.get(p, -1) < end}
        raise AssertionError(f"{exc}; committed/end per partition behind: {behind}") from None
    return committed
