"""A worker that reads a share of the trace topic routes chunks about as large as a lone worker's (so an entity
its messages share costs about as few entity events per span), waiting no longer than its bound."""

from __future__ import annotations

import pytest

from stream.worker.pacing import ChunkPacer, fill_pause

TARGET = 16_384
MAX_PAUSE_S = 0.25
TAKE_WAIT_S = 0.05  # Faust's take_events closes a chunk this long after it starts waiting
PROCESS_S_PER_SPAN = 2e-6


def chunk_spans(spans_per_s: float, chunks: int = 40) -> tuple[list[float], list[float]]:
    """The spans of each chunk, and the pauses, of an agent reading ``spans_per_s`` (spans arriving evenly):
    each chunk holds what arrived while the last was processed, during the pause, and over the take's wait."""
    now, pacer, total = 0.0, ChunkPacer(TARGET, MAX_PAUSE_S, 0.0), 0
    sizes, pauses, gathering = [], [], 0.0
    for _ in range(chunks):
        spans = round(spans_per_s * (gathering + TAKE_WAIT_S))
        now += TAKE_WAIT_S + spans * PROCESS_S_PER_SPAN
        total += spans
        pause = pacer.pause(total, now)
        sizes.append(spans)
        pauses.append(pause)
        gathering = spans * PROCESS_S_PER_SPAN + pause
        now += pause
    return sizes[10:], pauses[10:]  # past the first chunks, which start from nothing


def test_a_quarter_share_fills_its_chunks_about_as_a_lone_worker_does():
    alone, _ = chunk_spans(280_000)
    share, pauses = chunk_spans(280_000 / 4)
    assert min(alone) >= TARGET  # a lone worker at full rate fills its chunks without a pause
    # Without a pause a quarter share's chunks would hold a quarter as many spans; with it, about the target.
    assert min(share) >= 0.8 * TARGET
    assert max(pauses) <= MAX_PAUSE_S


def test_a_worker_at_full_rate_never_pauses():
    _, pauses = chunk_spans(400_000)
    assert pauses == [0.0] * len(pauses)


def test_a_trickle_waits_no_longer_than_the_bound():
    sizes, pauses = chunk_spans(2_000)
    assert pauses == [MAX_PAUSE_S] * len(pauses)
    assert max(sizes) < TARGET  # the latency bound wins over the chunk's size


@pytest.mark.parametrize(("spans", "cycle_s", "paused_s", "expected"), [
    (TARGET // 4, 0.1, 0.0, 0.3),  # three more cycles' worth of spans to come
    (TARGET // 4, 0.1, 0.05, 0.35),  # the last pause is part of the cycle: only its other 0.05 s recur
    (TARGET, 0.1, 0.0, 0.0),
    (TARGET, 0.1, 0.04, 0.04),  # a chunk of the target keeps the pause that made it
    (4 * TARGET, 0.1, 0.04, 0.0),
    (0, 0.1, 0.0, 0.0),  # every record bad: nothing to fill
])
def test_the_pause_is_what_the_rest_of_the_chunk_takes_at_the_last_rate(spans, cycle_s, paused_s, expected):
    assert fill_pause(spans, cycle_s, paused_s, TARGET, max_pause_s=1.0) == pytest.approx(expected)


def test_a_chunk_full_of_small_records_is_not_held_back():
    # A chunk that reached its record count leaves more records waiting: a pause would only add to the backlog.
    pacer = ChunkPacer(TARGET, MAX_PAUSE_S, 0.0)
    assert pacer.pause(TARGET // 8, 0.05, full=True) == 0.0
    assert pacer.pause(TARGET // 4, 0.1) > 0.0  # the same few spans without a backlog wait for more
