"""Bounds every decoder enforces on hostile input, taken from the settings once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from stream.ingest.formats.eventtime import ANY_TIME, TimeBounds, wall_clock_bounds
from stream.jsonsafe import DEFAULT_MAX_DEPTH
from stream.settings import Settings


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    max_record_bytes: int = 8 * 1024 * 1024
    max_spans_per_message: int = 200_000
    max_attributes_per_span: int = 512
    max_trace_ids: int = 5
    max_json_depth: int = DEFAULT_MAX_DEPTH
    max_entities_per_span: int = 128
    max_entities_per_message: int = 4096
    # The plausible event times, asked per record: the worker's move with the wall clock. Runtime
    # evidence (spans, alerts) has a past bound too; findings do not (see stream.ingest.formats.eventtime).
    time_bounds: Callable[[], TimeBounds] = lambda: ANY_TIME
    finding_time_bounds: Callable[[], TimeBounds] = lambda: ANY_TIME

    @classmethod
    def from_settings(cls, settings: Settings, clock: Callable[[], float] | None = None) -> DecodeLimits:
        """The settings' limits; with a wall ``clock`` (the worker's), times too far ahead of it are refused,
        and spans and alerts older than ``max_event_age_s`` before it."""
        return cls(
            max_record_bytes=settings.max_record_bytes,
            max_spans_per_message=settings.max_spans_per_message,
            max_attributes_per_span=settings.max_attributes_per_span,
            max_trace_ids=settings.max_trace_ids,
            max_json_depth=settings.max_json_depth,
            max_entities_per_span=settings.max_entities_per_span,
            max_entities_per_message=settings.max_entities_per_message,
            **({"time_bounds": wall_clock_bounds(settings.max_clock_skew_s, clock, settings.max_event_age_s),
                "finding_time_bounds": wall_clock_bounds(settings.max_clock_skew_s, clock)} if clock else {}),
        )
