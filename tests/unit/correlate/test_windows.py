"""Hand-kept hopping windows: sums, lateness, and bounded size."""

from stream.correlate import windows

SPEC = windows.WindowSpec(size_s=900, step_s=60, allowed_lateness_s=300)


def test_window_sums_buckets_inside_it_only():
    buckets = []
    windows.add(buckets, SPEC, 1000.0, 5, 2, now=1000.0)
    windows.add(buckets, SPEC, 1030.0, 3, 0, now=1030.0)
    windows.add(buckets, SPEC, 1800.0, 7, 1, now=1800.0)
    assert windows.totals(buckets, SPEC, 1800.0) == (15, 3)
    assert windows.totals(buckets, SPEC, 1000.0 + 900 + 120) == (7, 1)


def test_late_record_within_lateness_is_kept_beyond_it_is_refused():
    buckets = []
    windows.add(buckets, SPEC, 10_000.0, 1, 0, now=10_000.0)
    assert windows.add(buckets, SPEC, 10_000.0 - 900 - 200, 4, 0, now=10_000.0)
    assert not windows.add(buckets, SPEC, 10_000.0 - 900 - 400, 4, 0, now=10_000.0)
    assert windows.totals(buckets, SPEC, 10_000.0 - 900 - 200) == (4, 0)


def test_state_stays_bounded_over_a_long_stream():
    buckets = []
    for minute in range(10_000):
        windows.add(buckets, SPEC, minute * 60.0, 1, 0, now=minute * 60.0)
    assert len(buckets) <= (900 + 300) / 60 + 1
    assert windows.totals(buckets, SPEC, 9_999 * 60.0) == (15, 0)
