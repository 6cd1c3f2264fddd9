"""Waiting on what real processes do: a condition to hold, or the escalations of the scenario to settle."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from workers import final_states, read_topic

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
