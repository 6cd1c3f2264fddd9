"""Event time is the producers' word (issue 13): times hotpath cannot believe are refused when decoded,
and no single record, partition or source moves the correlator's time for the others."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, datetime

import orjson
import pytest
from engine_harness import BUCKET, T0, VAULT, Harness, finding, touch
from hostile import AGE_REASON, SKEW_REASON, YEAR_2100, YEAR_10000_IN_UTC, falco, span_ending_at
from inputs import config_event

from stream.correlate.correlator import Correlator
from stream.correlate.replay import replay
from stream.correlate.windows import LowWatermark
from stream.demo.scenario import build_scenario
from stream.entities.context import Context
from stream.ingest.decode import Ingest
from stream.ingest.formats.alerts import decode_alerts
from stream.ingest.formats.eventtime import TimeBounds, check_times
from stream.ingest.formats.findings import decode_findings
from stream.ingest.formats.limits import DecodeLimits
from stream.ingest.router import Router
from stream.models import Alert, DecodeError
from stream.settings import load_settings

# --- refused when decoded --------------------------------------------------------------------------------


def test_a_time_that_is_year_10000_in_utc_is_refused_when_decoded():
    alert = {**falco(T0), "time": YEAR_10000_IN_UTC}
    with pytest.raises(DecodeError, match="event time 9999-12-31T23:59:59-23:00 is out of range once converted to UTC"):
        decode_alerts(orjson.dumps(alert), Context().resolver)
    document = config_event("NON_COMPLIANT")
    document["detail"]["newEvaluationResult"]["resultRecordedTime"] = YEAR_10000_IN_UTC
    with pytest.raises(DecodeError, match="out of range once converted to UTC"):
        decode_findings(orjson.dumps(document))


def test_the_worker_refuses_records_dated_further_ahead_of_its_clock_than_the_skew():
    settings = load_settings()
    ingest = Ingest(Router(Context(), 60.0), DecodeLimits.from_settings(settings, clock=lambda: T0))
    with pytest.raises(DecodeError, match=r"alert 5d4f0c67\S+: event time 2100-01-01T00:00:00.000Z " + SKEW_REASON):
        ingest("alerts", orjson.dumps(falco(YEAR_2100)))
    with pytest.raises(DecodeError, match=r"spans on arn:aws:s3:::acme-statements: "
                                          r"event time 2100-01-01T00:00:00.0\d\dZ " + SKEW_REASON):
        ingest("traces", span_ending_at(YEAR_2100))
    document = config_event("NON_COMPLIANT")
    document["detail"]["newEvaluationResult"]["resultRecordedTime"] = "2100-01-01T00:00:00Z"
    with pytest.raises(DecodeError, match=SKEW_REASON):
        ingest("findings", orjson.dumps(document))
    # Within the skew, producers' clocks running a little ahead are believed.
    assert ingest("alerts", orjson.dumps(falco(T0 + 290))).events
    assert ingest("traces", span_ending_at(T0 + 290)).events


def test_recent_bounds_refuse_times_older_than_the_age_before_the_clock():
    bounds = TimeBounds.recent(T0, skew_s=300, max_age_s=3600)
    assert bounds.check(T0 - 3600, "alert a") == T0 - 3600
    assert bounds.check(T0 + 300, "alert a") == T0 + 300
    with pytest.raises(DecodeError, match=r"alert a: event time 2026-11-23T07:59:59.000Z is implausible: "
                                          r"more than 3600 s before the clock \(HOTPATH_MAX_EVENT_AGE_S\)"):
        bounds.check(T0 - 3601, "alert a")
    with pytest.raises(DecodeError, match=SKEW_REASON):
        bounds.check(T0 + 301, "alert a")


def test_a_touch_is_refused_by_whichever_of_its_first_and_last_span_ends_is_implausible():
    bounds = TimeBounds.recent(T0, skew_s=300, max_age_s=3600)
    check_times(replace(touch(BUCKET, [], 0), first_seen=T0 - 3600), bounds)  # both ends within: believed
    began_too_early = replace(touch(BUCKET, [], 0), first_seen=T0 - 3601)
    with pytest.raises(DecodeError, match=r"spans on arn:aws:s3:::acme-statements: event time "
                                          r"2026-11-23T07:59:59.000Z is implausible: more than 3600 s before"):
        check_times(began_too_early, bounds)
    with pytest.raises(DecodeError, match=r"event time 2100-01-01T00:00:00.000Z " + SKEW_REASON):
        check_times(replace(touch(BUCKET, [], 0), last_seen=YEAR_2100), bounds)
    with pytest.raises(DecodeError, match=r"event time nan s since the epoch is implausible"):
        check_times(replace(touch(BUCKET, [], 0), first_seen=float("nan")), bounds)


def test_the_worker_refuses_spans_and_alerts_older_than_the_event_age_but_believes_old_findings():
    settings = load_settings()
    ingest = Ingest(Router(Context(), 60.0), DecodeLimits.from_settings(settings, clock=lambda: T0))
    week = settings.max_event_age_s
    with pytest.raises(DecodeError, match=r"alert 5d4f0c67\S+: event time 2026-11-16T08:59:00.000Z " + AGE_REASON):
        ingest("alerts", orjson.dumps(falco(T0 - week - 60)))
    with pytest.raises(DecodeError, match=r"spans on arn:aws:s3:::acme-statements: "
                                          r"event time 2026-11-16T08:59:00.0\d\dZ " + AGE_REASON):
        ingest("traces", span_ending_at(T0 - week - 60))
    assert ingest("alerts", orjson.dumps(falco(T0 - week + 60))).events
    assert ingest("traces", span_ending_at(T0 - week + 60)).events
    # A finding first observed a month ago and still open is honest input: its age is no reason to refuse it.
    document = config_event("NON_COMPLIANT")
    document["detail"]["newEvaluationResult"]["resultRecordedTime"] = "2026-10-23T09:00:00Z"
    assert ingest("findings", orjson.dumps(document)).events


# --- no single record moves time -------------------------------------------------------------------------


def escalated_estate() -> Harness:
    """The statements bucket and the vault, both escalated by internet traffic at T0 + 12."""
    h = Harness()
    h.feed(h.router.finding(finding("f-bucket", BUCKET)))
    h.feed(h.router.finding(finding("f-vault", VAULT)))
    h.traces(touch("service:payments-api", [], 10, internet=40), touch(BUCKET, ["service:payments-api"], 12),
             touch(VAULT, ["service:payments-api"], 12, trace="1af7651916cd43dd8448eb211c80319c"))
    assert {uid: h.latest(uid)["state"] for uid in ("f-bucket", "f-vault")} == {"f-bucket": "escalated",
                                                                                "f-vault": "escalated"}
    return h


def test_one_far_future_record_resolves_nothing_sweeps_nothing_and_moves_no_time():
    h = escalated_estate()
    h.traces(touch("service:bystander", [], 20))  # no finding: swept only once time really moves on
    # A record dated 2100 that got past decoding (written before the check, or by replay's input).
    h.feed(h.router.alert(Alert(uid="forged", source="falco", rule="Write below etc", severity="low",
                                entities=["service:elsewhere"], observed_at=datetime.fromtimestamp(YEAR_2100, UTC))))
    h.tick()
    assert [e["state"] for e in h.out if e["state"] == "resolved"] == []
    assert h.correlator.sweep() == 0
    assert h.correlator.watermark < T0 + 60


def test_time_is_the_minimum_of_live_sources_each_vouched_for_by_two_records():
    clock = LowWatermark(quorum=2, idle_after=3)
    for ts in (100.0, 101.0):
        clock.observe(("touch", 0), ts)
        clock.observe(("touch", 1), ts)
    clock.observe(("touch", 1), 5000.0)
    assert clock.value == 100.0  # partition 1 ran ahead: partition 0 holds time back
    clock.observe(("touch", 0), 9000.0)
    assert clock.value == 101.0  # one record on partition 0 vouches for nothing beyond its previous one
    for ts in (5001.0, 5002.0, 5003.0, 5004.0):
        clock.observe(("touch", 1), ts)
    assert clock.value == 5003.0  # partition 0 went quiet: it no longer stalls time
    clock.observe(("touch", 0), 102.0)
    assert clock.value == 5003.0  # time never goes back


def test_restored_state_is_clamped_to_the_clock_and_does_not_move_time():
    h = escalated_estate()
    # A worker before this fix wrote the vault's state after a forged record dated 2100.
    vault = h.store[VAULT]  # a copy, as a table keeps states: written back whole
    vault.clock = vault.last_exercised = YEAR_2100
    h.store[VAULT] = vault
    restarted = Correlator(h.settings, h.context, h.store, clock=lambda: T0 + 60)
    restarted.restore_live()
    assert [e.state for e in restarted.tick()] == []  # the bucket is not stale: no time passed
    assert restarted.watermark < T0 + 60
    assert h.store[VAULT].clock == T0 + 60 + h.settings.max_clock_skew_s


def test_replay_gives_the_same_escalations_with_or_without_one_forged_record(tmp_path):
    settings = load_settings()
    scenario = build_scenario(seed=11, minutes=4)
    files = scenario.write_files(tmp_path / "honest")
    honest = list(replay(settings, **files, clock=lambda: T0))

    forged_alerts = tmp_path / "forged-alerts.ndjson"
    forged_alerts.write_bytes(orjson.dumps(falco(YEAR_2100, uuid="forged-2100")) + b"\n")
    forged_span = tmp_path / "forged-span.binpb"
    forged_span.write_bytes(span_ending_at(YEAR_2100, bucket="finpay-prod-statements"))
    errors = io.StringIO()
    forged = list(replay(settings, **{**files, "alerts": files["alerts"] + [forged_alerts],
                                      "traces": files["traces"] + [forged_span]}, errors=errors, clock=lambda: T0))

    assert honest and not any(e["state"] == "resolved" for e in honest)
    assert forged == honest
    skipped = errors.getvalue().splitlines()
    assert len(skipped) == 2 and all("from the data's median time (HOTPATH_MAX_EVENT_AGE_S)" in s for s in skipped)
