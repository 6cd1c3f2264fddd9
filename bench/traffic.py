"""The scenario's traffic, several times over, for worker runs that last longer than their start-up.

A copy of the trace batches is the same spans moved ``index`` repeat periods back in event time, with
trace ids of its own (every trace of every copy is a new trace). Copies are played earliest first and
the scenario itself (its trace batches and alerts, unchanged) last, so the escalations hotpath ends with
are the scenario's expected ones: a repeat period is the scenario's length plus a whole window and its
allowed lateness (rounded up to a window step), so no window that the scenario's own traffic ends in
sees anything of a copy, and what the copies escalated on the way is updated to, or resolved before,
the scenario's verdicts. The findings are written once, before any copy.

A worker run first plays a warm-up of copies further back than any timed one, in passes of WARM_UP_PASSES
spans. The first takes the workers past their start-up: a first pass over new entities creates every
entity's state and publishes every context fact, and runs at less than half the later rate. The next two
are timed as the traffic is; a short pass also pays a fixed cost (the last chunk's waits, reading the
workers' progress) that a long one spreads, so the rate that estimates how many copies to make before
the clock starts (:func:`copies_for`) is the one of the spans the longer pass adds (:func:`marginal_rate`).
On a shared machine that estimate is rough: how much of the copies is played is decided while they are,
slice by slice (bench/throughput.py), so a copy may be played in part.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from stream.demo.scenario import Scenario
from stream.settings import Settings

Batch = tuple[bytes | None, bytes]  # (key, value) of one trace message
NANOS = 1_000_000_000
TRACE_ID_BYTES = 16
MAX_COPIES = 400  # the timed traffic's copies at most; the warm-up plays further back
WARM_UP_PASSES = (40_000, 20_000, 40_000)  # spans: the start-up's pass, then a short and a long timed one
HEADROOM = 1.2  # copies made before the clock beyond the warm-up's estimate (made while timed, they cost CPU)
# Multiplied by the copy index to give each copy its trace-id mask: an odd 128-bit constant (from the
# golden ratio), so that every copy's mask differs from every other's and from zero.
MASK_STEP = 0x9E3779B97F4A7C15F39CC0605CEDC835


def repeat_period_s(scenario: Scenario, settings: Settings) -> float:
    """How far apart in event time two copies start: the scenario, then a whole window and its lateness."""
    span = 60 * scenario.minutes + settings.window_size_s + settings.allowed_lateness_s
    return math.ceil(span / settings.window_step_s) * settings.window_step_s


def copies_for(seconds: float, spans_per_s: float, spans_per_copy: int) -> int:
    """Copies of the traffic (the scenario itself included) that take at least ``seconds`` at ``spans_per_s``."""
    return max(1, min(MAX_COPIES, math.ceil(HEADROOM * seconds * spans_per_s / spans_per_copy)))


def marginal_rate(short: tuple[int, float], long: tuple[int, float]) -> float:
    """Spans per second of what the long pass adds to the short one, given (spans, seconds) of each, but at
    most twice the long pass's own rate (a difference of two short timings can be anything: it only sizes
    the copies made ahead); the long pass's own rate where noise made it no slower than the short one."""
    (short_spans, short_s), (long_spans, long_s) = short, long
    own = long_spans / long_s
    if long_s <= short_s or long_spans <= short_spans:
        return own
    return min((long_spans - short_spans) / (long_s - short_s), 2 * own)


def fresh_trace_id(trace_id: bytes, index: int) -> bytes:
    """The trace id a span of copy ``index`` carries instead of ``trace_id``: the same for the same trace, a
    different one in every copy, never all zeros (which OTLP reserves for "no trace"); copy 0 keeps its ids."""
    if index == 0 or len(trace_id) != TRACE_ID_BYTES:
        return trace_id
    mask = (index * MASK_STEP) % (1 << 8 * TRACE_ID_BYTES)
    fresh = int.from_bytes(trace_id, "big") ^ mask
    return (fresh or mask).to_bytes(TRACE_ID_BYTES, "big")


def shifted_batch(value: bytes, index: int, shift_s: float) -> bytes:
    """One otlp_proto trace message moved ``shift_s`` in event time, with copy ``index``'s trace ids."""
    request = ExportTraceServiceRequest.FromString(value)
    shift = round(shift_s * NANOS)
    fresh: dict[bytes, bytes] = {}
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                span.start_time_unix_nano += shift
                span.end_time_unix_nano += shift
                if span.events:
                    for event in span.events:
                        event.time_unix_nano += shift
                trace_id = span.trace_id
                new_id = fresh.get(trace_id)
                if new_id is None:
                    new_id = fresh[trace_id] = fresh_trace_id(trace_id, index)
                span.trace_id = new_id
                if span.links:
                    for link in span.links:
                        link.trace_id = fresh_trace_id(link.trace_id, index)
    return request.SerializeToString()


class Copies:
    """The scenario's trace batches, copy by copy (made once each and kept: every worker run plays the same)."""

    def __init__(self, scenario: Scenario, settings: Settings) -> None:
        if scenario.encoding != "otlp_proto":
            raise ValueError(f"copies are made of otlp_proto trace batches, not {scenario.encoding}")
        self.scenario = scenario
        self.period_s = repeat_period_s(scenario, settings)
        self.counts = batch_spans(scenario)  # the spans of each trace batch
        self._made: dict[int, list[Batch]] = {}

    def copy(self, index: int) -> list[Batch]:
        """Copy ``index`` (0 is the scenario's own batches), ``index`` periods back, in event-time order."""
        if index == 0:
            return list(self.scenario.trace_batches)
        if index not in self._made:
            self._made[index] = [(key, shifted_batch(value, index, -index * self.period_s))
                                 for key, value in self.scenario.trace_batches]
        return self._made[index]

    def warm_up(self) -> list[tuple[list[Batch], int]]:
        """The warm-up's passes (of at least WARM_UP_PASSES spans each) from the copies behind every timed one,
        earliest first, each with its span count."""
        counts = self.counts
        passes: list[tuple[list[Batch], int]] = [([], 0) for _ in WARM_UP_PASSES]
        current = 0
        first = MAX_COPIES + math.ceil(sum(WARM_UP_PASSES) / self.scenario.span_count) + 1
        for index in range(first, MAX_COPIES, -1):
            for batch, count in zip(self.copy(index), counts, strict=True):
                batches, spans = passes[current]
                batches.append(batch)
                passes[current] = (batches, spans + count)
                if spans + count >= WARM_UP_PASSES[current]:
                    current += 1
                    if current == len(passes):
                        return passes
        raise AssertionError("the warm-up's copies hold fewer spans than WARM_UP_PASSES")  # by `first`

    def timed_copy(self, number: int) -> list[Batch]:
        """The ``number``-th copy of the timed traffic (from 0, earliest first): MAX_COPIES periods back, and on."""
        if not 0 <= number < MAX_COPIES:
            raise ValueError(f"the timed traffic holds at most {MAX_COPIES} copies")
        return self.copy(MAX_COPIES - number)

    def copy_batches(self, start: int, count: int) -> list[Batch]:
        """Trace batches ``start`` to ``start + count - 1`` of the timed copies laid end to end, earliest first."""
        per_copy = len(self.scenario.trace_batches)
        return [self.timed_copy(index // per_copy)[index % per_copy] for index in range(start, start + count)]

    def copy_spans(self, count: int) -> int:
        """The spans in the first ``count`` trace batches of the timed copies."""
        whole, part = divmod(count, len(self.counts))
        return whole * self.scenario.span_count + sum(self.counts[:part])

    def closing(self) -> list[tuple[str, Batch]]:
        """What the timed traffic ends with: the scenario's trace batches and alerts, in event-time order."""
        return [(stream, (key, value)) for _, stream, key, value in self.scenario.timeline()
                if stream in ("traces", "alerts")]

    def timed(self, batches: int) -> Iterator[tuple[str, Batch]]:
        """The timed traffic: the first ``batches`` trace batches of the copies, then the scenario's own."""
        yield from (("traces", batch) for batch in self.copy_batches(0, batches))
        yield from self.closing()


def records(settings: Settings, traffic: Iterable[tuple[str, Batch]]) -> list[tuple[str, bytes | None, bytes]]:
    """(stream, (key, value)) traffic, such as :meth:`Copies.timed`, as (topic, key, value) records."""
    return [(getattr(settings, f"topic_{stream}"), key, value) for stream, (key, value) in traffic]


def batch_spans(scenario: Scenario) -> list[int]:
    """The span count of each of the scenario's trace batches."""
    return [sum(len(scope.spans) for resource in ExportTraceServiceRequest.FromString(value).resource_spans
                for scope in resource.scope_spans) for _, value in scenario.trace_batches]
