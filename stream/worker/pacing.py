"""How long the trace agent lets messages gather before it takes its next chunk.

A worker routes the trace messages of one chunk together, so an entity they share costs one entity event
(and its records, sends and state writes) per chunk. Faust's ``take_events`` closes a chunk after a fixed
wait, so the fewer messages a worker reads per second (the more workers share the topic), the fewer spans
a chunk holds and the more each span costs. The pacer keeps a chunk near a span count instead: after a
chunk short of it, the agent pauses about as long as the rest takes to arrive at the rate the last chunk
came in, never more than a bound (the latency it may add).
"""

from __future__ import annotations


def fill_pause(spans: int, cycle_s: float, paused_s: float, target_spans: int, max_pause_s: float) -> float:
    """Seconds to pause before the next chunk: ``spans`` came in over the last ``cycle_s`` (``paused_s`` of
    which was the last pause), so a chunk of ``target_spans`` takes ``target_spans * cycle_s / spans``, and a
    cycle without a pause ``cycle_s - paused_s``; none where that is enough (or the chunk was empty), at most
    ``max_pause_s``. A chunk of exactly the target keeps the pause as it was: the pauses settle, not swing."""
    if spans <= 0 or cycle_s <= 0:
        return 0.0
    needed = target_spans * cycle_s / spans - (cycle_s - paused_s)
    return min(max_pause_s, max(0.0, needed))


class ChunkPacer:
    """The pauses of one agent's chunks, from a running count of the spans it took (``spans_total``)."""

    def __init__(self, target_spans: int, max_pause_s: float, now: float) -> None:
        self.target_spans = target_spans
        self.max_pause_s = max_pause_s
        self._cycle_started = now
        self._spans_total = 0
        self._paused_s = 0.0

    def pause(self, spans_total: int, now: float, full: bool = False) -> float:
        """The pause after the chunk that brought the count to ``spans_total`` at ``now`` (monotonic seconds);
        none after a chunk ``full`` of records: more are waiting already, a pause would only leave them there."""
        spans, self._spans_total = spans_total - self._spans_total, spans_total
        cycle_s = now - self._cycle_started
        pause = 0.0 if full else fill_pause(spans, cycle_s, self._paused_s, self.target_spans, self.max_pause_s)
        self._cycle_started, self._paused_s = now, pause
        return pause
