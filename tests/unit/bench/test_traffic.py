"""The benchmark's traffic, several times over: valid times and trace ids, and the same escalations at the end."""

from __future__ import annotations

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from workers import TEST_DATA_MAX_AGE_S, final_states

from bench.core import Pipeline
from bench.traffic import (
    HEADROOM,
    MAX_COPIES,
    WARM_UP_PASSES,
    Copies,
    copies_for,
    fresh_trace_id,
    marginal_rate,
    repeat_period_s,
    shifted_batch,
)
from stream.demo.scenario import DEFAULT_START, build_scenario
from stream.demo.tracegen import TraceBuilder, aws_call, encode_batch
from stream.settings import load_settings

SETTINGS = load_settings(max_event_age_s=TEST_DATA_MAX_AGE_S)


@pytest.fixture(scope="module")
def scenario():
    return build_scenario(seed=7, scale=1, minutes=10)


def spans_of(value: bytes):
    request = ExportTraceServiceRequest.FromString(value)
    return [span for resource in request.resource_spans for scope in resource.scope_spans for span in scope.spans]


def two_traces() -> bytes:
    builder = TraceBuilder(seed=3)
    for offset in (0.0, 5.0):
        root = builder.server_span("payments-api", "GET /v1/statements", start=DEFAULT_START + offset,
                                   client_address="81.2.69.142")
        builder.client_span("payments-api", "S3.GetObject", start=DEFAULT_START + offset + 0.001, parent=root,
                            attributes=aws_call("S3", "GetObject", {"aws.s3.bucket": "statements"}))
    return encode_batch(builder.take())


def test_a_copy_moves_every_span_by_the_shift_and_keeps_each_trace_together_under_a_new_id():
    original = spans_of(two_traces())
    copied = spans_of(shifted_batch(two_traces(), 3, -1800.0))

    assert [(s.start_time_unix_nano - c.start_time_unix_nano, s.end_time_unix_nano - c.end_time_unix_nano)
            for s, c in zip(original, copied, strict=True)] == [(1800 * 10**9, 1800 * 10**9)] * 4
    assert [c.span_id for c in copied] == [s.span_id for s in original]
    old_ids, new_ids = [s.trace_id for s in original], [c.trace_id for c in copied]
    renamed = {old: {new for o, new in zip(old_ids, new_ids, strict=True) if o == old} for old in old_ids}
    assert len(renamed) == 2 and all(len(new) == 1 for new in renamed.values())  # a trace stays one trace
    assert len(set(new_ids)) == 2 and not set(new_ids) & set(old_ids)
    assert all(len(trace_id) == 16 and any(trace_id) for trace_id in new_ids)


def test_every_copy_has_trace_ids_of_its_own_and_none_is_all_zeros():
    trace_id = bytes(range(1, 17))
    ids = [fresh_trace_id(trace_id, index) for index in range(MAX_COPIES + 2)]
    assert ids[0] == trace_id  # the scenario itself is played as it is
    assert len(set(ids)) == len(ids)
    mask_of_copy_one = fresh_trace_id(bytes(16), 1)
    assert any(fresh_trace_id(mask_of_copy_one, 1))  # the one id the mask would turn into zeros


def test_copies_are_a_window_and_its_lateness_apart_beyond_the_scenario_on_window_steps(scenario):
    period = repeat_period_s(scenario, SETTINGS)
    assert period >= 60 * scenario.minutes + SETTINGS.window_size_s + SETTINGS.allowed_lateness_s
    assert period % SETTINGS.window_step_s == 0


def test_the_traffic_is_sized_to_last_at_least_the_wanted_time():
    assert copies_for(10.0, 30_000, 40_000) == 9  # 300,000 spans and the headroom: 9 copies
    assert copies_for(10.0, 30_000, 40_000) * 40_000 >= HEADROOM * 10.0 * 30_000
    assert copies_for(10.0, 1_000, 40_000) == 1
    assert copies_for(10.0, 10**9, 40_000) == MAX_COPIES


def test_the_copies_spans_are_counted_batch_by_batch(scenario):
    copies = Copies(scenario, SETTINGS)
    per_copy = len(scenario.trace_batches)
    assert copies.copy_spans(0) == 0
    assert copies.copy_spans(2 * per_copy + 3) == 2 * scenario.span_count + sum(
        len(spans_of(value)) for _, value in scenario.trace_batches[:3])
    assert len(copies.copy_batches(per_copy - 1, 2)) == 2


def test_copies_come_earliest_first_and_the_scenario_itself_last(scenario):
    copies = Copies(scenario, SETTINGS)
    timed = list(copies.timed(2 * len(scenario.trace_batches)))
    traces = [batch for stream, batch in timed if stream == "traces"]
    starts = [min(s.start_time_unix_nano for s in spans_of(value)) / 1e9 for _, value in traces]
    count = len(scenario.trace_batches)
    assert len(traces) == 3 * count
    assert starts[0] < starts[count] < starts[2 * count]
    assert starts[count] - starts[0] == pytest.approx(copies.period_s, abs=1.0)
    assert traces[2 * count:] == scenario.trace_batches
    assert [value for stream, (_, value) in timed if stream == "alerts"] == scenario.alerts
    warm_up = [batch for batches, _ in copies.warm_up() for batch in batches]
    assert (max(s.end_time_unix_nano for _, value in warm_up for s in spans_of(value))
            < min(s.start_time_unix_nano for _, value in traces for s in spans_of(value)))


def test_the_warm_up_passes_hold_at_least_their_spans_and_say_how_many(scenario):
    passes = Copies(scenario, SETTINGS).warm_up()
    assert len(passes) == len(WARM_UP_PASSES)
    for (batches, spans), wanted in zip(passes, WARM_UP_PASSES, strict=True):
        counts = [len(spans_of(value)) for _, value in batches]
        assert spans == sum(counts) and spans - counts[-1] < wanted <= spans


def test_the_sizing_rate_is_the_one_of_the_spans_the_long_pass_adds():
    # 0.5 s of fixed cost in each pass, then 100,000 spans per second
    assert marginal_rate((40_000, 0.9), (120_000, 1.7)) == pytest.approx(100_000)
    assert marginal_rate((40_000, 0.9), (120_000, 0.8)) == 150_000  # noise: the long pass's own rate
    assert marginal_rate((40_000, 0.9), (120_000, 0.91)) == 2 * 120_000 / 0.91  # noise: at most twice its own


def test_the_workers_end_with_the_scenarios_escalations_however_many_copies_come_first(scenario):
    wanted = {uid: ("escalated", priority) for uid, priority in scenario.expected.escalated.items()}
    copies = Copies(scenario, SETTINGS)
    pipeline = Pipeline(SETTINGS)
    pipeline.load(scenario)
    for batches, _ in copies.warm_up():
        pipeline.play(("traces", value) for _, value in batches)
    partial = 2 * len(scenario.trace_batches) + 5  # two copies and a slice of a third
    pipeline.play((stream, value) for stream, (_, value) in copies.timed(partial))

    assert final_states(pipeline.events) == wanted
    assert len(pipeline.events) > len(wanted)  # the copies did escalate on the way
