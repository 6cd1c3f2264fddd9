"""``TraceParts``: the trace messages a worker takes together cost one entity event per entity and window
step, in parts whose touches stay bounded."""

from __future__ import annotations

from stream.entities.context import Context
from stream.ingest.router import TRACE_PART_MAX_TOUCHES, Router, TraceParts
from stream.models import Touch, TraceBatch

T0 = 1_772_446_800.0  # 2026-03-02T10:20:00Z, the start of a window step
STEP_S = 60.0


def message(entities: list[str], at: float) -> TraceBatch:
    """One trace message's touches: one span on each entity, called by the checkout service."""
    return TraceBatch([Touch(entity, ["svc:checkout"], spans=1, errors=0, internet_spans=0, first_seen=at,
                             last_seen=at, trace_ids=[f"{int(at * 1000):032x}"]) for entity in entities])


def parts(max_touches: int = TRACE_PART_MAX_TOUCHES) -> TraceParts:
    return TraceParts(Router(Context(), STEP_S), STEP_S, max_trace_ids=8, max_touches=max_touches)


def test_a_chunk_of_the_usual_trace_messages_is_one_event_per_entity():
    # 64 messages (a worker's chunk) of 32 touches on the same tables within one window step: 2048 touches
    tables = [f"arn:aws:dynamodb:us-east-1:123456789012:table/t{index}" for index in range(32)]
    chunk = parts()
    assert all(chunk.add(message(tables, T0 + index * 0.5)) is None for index in range(64))
    routed = chunk.flush()
    assert sorted(entity for entity, _ in routed.events) == sorted(tables)
    assert {record["spans"] for _, record in routed.events} == {64}
    assert chunk.flush() is None


def test_a_part_is_routed_once_it_holds_its_touches_and_no_touch_is_lost():
    chunk = parts(max_touches=100)
    routed = [chunk.add(message([f"arn:aws:s3:::bucket-{index}-{n}" for n in range(10)], T0 + index))
              for index in range(25)]
    full = [index for index, part in enumerate(routed) if part is not None]
    assert full == [9, 19]  # every tenth message completes 100 touches
    rest = chunk.flush()
    events = [event for part in [*routed, rest] if part is not None for event in part.events]
    assert len(events) == 250 and {record["spans"] for _, record in events} == {1}


def test_the_parts_count_the_spans_taken_whether_routed_or_not():
    # what the trace agent paces its chunks by (stream.worker.pacing)
    chunk = parts(max_touches=100)
    for index in range(25):
        chunk.add(message([f"arn:aws:s3:::bucket-{index}-{n}" for n in range(10)], T0 + index))
    chunk.flush()
    assert chunk.spans == 250
