"""Pure tests of the report's figures: percentile, Window, build_report's definitions, Little's law, the forecast."""

from __future__ import annotations

import math
import random
import statistics
from datetime import UTC, datetime, timedelta, timezone

import pytest

from flowhook.metrics.little import BacklogSample
from flowhook.metrics.queueing import MODEL
from flowhook.metrics.report import (
    MAX_BUCKETS,
    OVERALL,
    BucketTotals,
    LatencyStats,
    Report,
    TypeTotals,
    Window,
    build_report,
    latency_stats,
    percentile,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)
LN2 = math.log(2)
LN100 = math.log(100)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _report(
    totals: list[TypeTotals],
    buckets: list[BucketTotals] | None = None,
    *,
    seconds: float = 100.0,
    bucket_seconds: float = 10.0,
    target: float = 10.0,
) -> Report:
    return build_report(
        totals,
        buckets or [],
        window=Window(T0, _at(seconds), bucket_seconds),
        generated_at=_at(seconds + 5),
        report_id="r-1",
        target_p99_seconds=target,
    )


def _bucket(event_type: str, start: float, seconds: float, arrivals: int, completions: int = 0) -> BucketTotals:
    return BucketTotals(event_type, _at(start), seconds, arrivals, completions, backlog=0, latency=None)


def _latency(p50: float) -> LatencyStats:
    """A latency sample summary whose p50 is what matters (the forecast calibrates on it)."""
    return LatencyStats(count=400, mean=p50, p50=p50, p95=2 * p50, p99=3 * p50, max=4 * p50)


# --- percentile and latency_stats ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([5.0], 0.0, 5.0),
        ([5.0], 0.99, 5.0),
        ([1.0, 2.0, 3.0, 4.0], 0.0, 1.0),
        ([1.0, 2.0, 3.0, 4.0], 1.0, 4.0),
        ([1.0, 2.0, 3.0, 4.0], 0.5, 2.5),  # position 1.5: halfway between 2 and 3
        ([1.0, 2.0, 3.0, 4.0], 0.25, 1.75),  # position 0.75
        ([10.0, 20.0], 0.9, 19.0),  # position 0.9
        ([3.0, 1.0, 2.0], 0.5, 2.0),  # unsorted input
        ([1.0, 1.0, 1.0, 10.0], 0.5, 1.0),  # position 1.5 between two equal values
        ([1.0, 1.0, 1.0, 10.0], 0.9, 7.3),  # position 2.7: 1 + 0.7 * 9
        ([float(k) for k in range(1, 101)], 0.5, 50.5),  # position 49.5
        ([float(k) for k in range(1, 101)], 0.95, 95.05),  # position 94.05
        ([float(k) for k in range(1, 101)], 0.99, 99.01),  # position 98.01
        ([float(k) for k in range(1, 11)], 0.25, 3.25),  # position 2.25
    ],
)
def test_percentile_hand_computed(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == pytest.approx(expected)


@pytest.mark.parametrize(
    "values",
    [
        [float(k) for k in range(1, 11)],
        [0.3, 0.1, 7.5, 2.2, 2.2, 9.0, 0.0],
        [random.Random(seed).expovariate(5.0) for seed in range(257)],
    ],
)
def test_percentile_matches_statistics_inclusive(values: list[float]) -> None:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    for k, cut in enumerate(cuts, start=1):
        assert percentile(values, k / 100) == pytest.approx(cut), k


@pytest.mark.parametrize(
    ("values", "q"),
    [([], 0.5), ([1.0], -0.01), ([1.0], 1.01), ([1.0], math.nan), ([1.0], math.inf)],
)
def test_percentile_rejects_empty_input_and_q_outside_unit_interval(values: list[float], q: float) -> None:
    with pytest.raises(ValueError):
        percentile(values, q)


def test_latency_stats_hand_computed() -> None:
    stats = latency_stats(v for v in [0.4, 0.1, 0.3, 0.2])  # any iterable, in any order
    assert stats is not None
    assert stats.count == 4
    assert stats.mean == pytest.approx(0.25)
    assert stats.p50 == pytest.approx(0.25)  # position 1.5
    assert stats.p95 == pytest.approx(0.385)  # position 2.85: 0.3 + 0.85 * 0.1
    assert stats.p99 == pytest.approx(0.397)  # position 2.97
    assert stats.max == 0.4


def test_latency_stats_of_one_value_and_of_none() -> None:
    assert latency_stats([]) is None
    assert latency_stats([0.7]) == LatencyStats(count=1, mean=0.7, p50=0.7, p95=0.7, p99=0.7, max=0.7)


# --- Window --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (datetime(2025, 1, 1), datetime(2025, 1, 2, tzinfo=UTC)),
        (datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 2)),
    ],
)
def test_window_rejects_naive_datetimes(start: datetime, end: datetime) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Window(start, end)


@pytest.mark.parametrize("end", [T0, T0 - timedelta(seconds=1)])
def test_window_rejects_end_at_or_before_start(end: datetime) -> None:
    with pytest.raises(ValueError, match="before it starts"):
        Window(T0, end)


@pytest.mark.parametrize("bucket_seconds", [0.0, -60.0, math.nan])
def test_window_rejects_non_positive_buckets(bucket_seconds: float) -> None:
    with pytest.raises(ValueError, match="bucket seconds must be positive"):
        Window(T0, _at(60), bucket_seconds)


def test_window_rejects_too_many_buckets_and_says_to_use_longer_ones() -> None:
    assert Window(T0, _at(MAX_BUCKETS), 1.0).bucket_count == MAX_BUCKETS
    with pytest.raises(ValueError, match="use longer buckets") as info:
        Window(T0, _at(MAX_BUCKETS + 1), 1.0)
    assert str(MAX_BUCKETS + 1) in str(info.value)


@pytest.mark.parametrize(
    ("seconds", "bucket_seconds", "count"),
    [
        (3600, 60, 60),  # exact
        (3601, 60, 61),  # a 1 s last bucket
        (90, 60, 2),  # a 30 s last bucket
        (30, 60, 1),  # one bucket longer than the window
        (10, 3, 4),  # 3 + 3 + 3 + 1
        (0.3, 0.1, 3),  # 0.3 / 0.1 is 2.9999999999999996 in floating point
        (2.1, 0.3, 7),  # 2.1 / 0.3 is 7.000000000000001: no spurious eighth bucket
        (1, 0.1, 10),
    ],
)
def test_window_bucket_count(seconds: float, bucket_seconds: float, count: int) -> None:
    window = Window(T0, _at(seconds), bucket_seconds)
    assert window.seconds == pytest.approx(seconds)
    assert window.bucket_count == count


def test_window_normalises_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    window = Window(T0.astimezone(plus_two), _at(60).astimezone(plus_two))
    assert window.start.utcoffset() == timedelta(0)
    assert window.end.utcoffset() == timedelta(0)
    assert (window.start, window.end) == (T0, _at(60))
    assert window.seconds == 60.0
    assert window.bucket_seconds == 60.0


def test_window_last() -> None:
    now = datetime(2025, 3, 1, 12, 30, tzinfo=UTC)
    window = Window.last(15, now=now, bucket_seconds=30)
    assert window.start == datetime(2025, 3, 1, 12, 15, tzinfo=UTC)
    assert window.end == now
    assert window.seconds == 900.0
    assert window.bucket_count == 30


def test_window_last_defaults_to_now() -> None:
    before = datetime.now(UTC)
    window = Window.last(1)
    after = datetime.now(UTC)
    assert before <= window.end <= after
    assert window.seconds == 60.0


def test_window_last_rejects_a_naive_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Window.last(5, now=datetime(2025, 1, 1))


# --- build_report --------------------------------------------------------------------------------------


def test_rows_are_sorted_by_type_with_all_last() -> None:
    # "all" sorts between "alpha" and "zeta" alphabetically, but always comes last.
    report = _report([TypeTotals(OVERALL, arrivals=3), TypeTotals("zeta", arrivals=1), TypeTotals("alpha", arrivals=2)])
    assert [r.event_type for r in report.rows] == ["alpha", "zeta", "all"]
    assert report.row("zeta").totals.arrivals == 1
    assert report.row("all").totals.arrivals == 3
    with pytest.raises(KeyError):
        report.row("missing")


def test_an_empty_overall_row_stands_in_when_absent() -> None:
    report = _report([TypeTotals("a", arrivals=5)])
    assert [r.event_type for r in report.rows] == ["a", "all"]
    overall = report.rows[-1]
    assert overall.totals == TypeTotals(OVERALL)
    assert (overall.arrival_rate, overall.processing_rate, overall.throughput) == (0.0, 0.0, 0.0)
    assert overall.tau_seconds is None
    assert overall.capacity is None
    assert overall.utilisation is None
    assert overall.latency is None
    assert overall.little is None
    assert overall.forecast is None


def test_empty_window_is_one_empty_all_row() -> None:
    report = _report([])
    assert [r.event_type for r in report.rows] == ["all"]
    assert report.rows[0].totals == TypeTotals(OVERALL)
    assert report.rows[0].peak_arrival_rate == 0.0
    assert report.buckets == []
    assert report.clock_skew is None


def test_rates_per_row_by_hand() -> None:
    # T = 100 s.
    report = _report(
        [
            TypeTotals("a", arrivals=50, completions=40, failed=2, in_flight=10, busy_seconds=8.0),
            TypeTotals("b", arrivals=10, completions=30),  # draining a backlog from before the window
            TypeTotals(OVERALL, arrivals=60, completions=70, failed=2, in_flight=10, busy_seconds=8.0),
        ]
    )
    a, b, overall = report.rows
    assert {r.seconds for r in report.rows} == {100.0}
    # a: λ = 50/100, μ = 40/100, θ = min = 0.4, τ = 1/0.4; capacity = 40/8, ρ = 0.5/5.
    assert a.arrival_rate == pytest.approx(0.5)
    assert a.processing_rate == pytest.approx(0.4)
    assert a.throughput == pytest.approx(0.4)
    assert a.tau_seconds == pytest.approx(2.5)
    assert a.capacity == pytest.approx(5.0)
    assert a.utilisation == pytest.approx(0.1)
    # b: θ is λ this time; no worker time, so neither capacity nor ρ.
    assert b.arrival_rate == pytest.approx(0.1)
    assert b.processing_rate == pytest.approx(0.3)
    assert b.throughput == pytest.approx(0.1)
    assert b.tau_seconds == pytest.approx(10.0)
    assert b.capacity is None
    assert b.utilisation is None
    # all: 60/100, 70/100; capacity 70/8 = 8.75, ρ = 0.6/8.75.
    assert overall.arrival_rate == pytest.approx(0.6)
    assert overall.processing_rate == pytest.approx(0.7)
    assert overall.throughput == pytest.approx(0.6)
    assert overall.tau_seconds == pytest.approx(1 / 0.6)
    assert overall.capacity == pytest.approx(8.75)
    assert overall.utilisation == pytest.approx(0.6 / 8.75)


@pytest.mark.parametrize(("arrivals", "completions"), [(5, 0), (0, 5), (0, 0)])
def test_tau_is_none_when_throughput_is_zero(arrivals: int, completions: int) -> None:
    row = _report([TypeTotals("a", arrivals=arrivals, completions=completions)]).row("a")
    assert row.throughput == 0.0
    assert row.tau_seconds is None


def test_capacity_and_utilisation_are_none_without_busy_time() -> None:
    row = _report([TypeTotals("a", arrivals=50, completions=50, busy_seconds=0.0)]).row("a")
    assert row.arrival_rate == pytest.approx(0.5)
    assert row.capacity is None
    assert row.utilisation is None


def test_latency_is_the_received_to_stored_stage() -> None:
    latency, batched = _latency(0.5), _latency(0.1)
    row = _report([TypeTotals("a", stages={"batched": batched, "latency": latency})]).row("a")
    assert row.latency is latency


def test_peak_arrival_rate_is_the_busiest_buckets_rate_per_type() -> None:
    buckets = [
        _bucket("a", 0, 10, 3),
        _bucket("a", 10, 10, 7),  # most arrivals, 0.7/s
        _bucket("a", 20, 5, 4),  # a short last bucket at 0.8/s: left out, a few events would read as a peak
        _bucket("b", 0, 10, 1),
        _bucket("b", 10, 10, 0),
        _bucket(OVERALL, 0, 10, 4),
        _bucket(OVERALL, 10, 10, 7),
        _bucket(OVERALL, 20, 5, 4),
    ]
    report = _report([TypeTotals("a"), TypeTotals("b"), TypeTotals("c"), TypeTotals(OVERALL)], buckets, seconds=25)
    assert report.row("a").peak_arrival_rate == pytest.approx(0.7)
    assert report.row("b").peak_arrival_rate == pytest.approx(0.1)
    assert report.row("c").peak_arrival_rate == 0.0  # no buckets at all
    assert report.row("all").peak_arrival_rate == pytest.approx(0.7)


def test_a_window_shorter_than_one_bucket_peaks_at_its_own_rate() -> None:
    report = _report(
        [TypeTotals("a"), TypeTotals(OVERALL)], [_bucket("a", 0, 5, 4), _bucket(OVERALL, 0, 5, 4)], seconds=5
    )
    assert report.row("a").peak_arrival_rate == pytest.approx(0.8)


def test_buckets_are_sorted_by_type_and_start_with_all_last() -> None:
    buckets = [
        _bucket(OVERALL, 10, 10, 1),
        _bucket(OVERALL, 0, 10, 1),
        _bucket("zeta", 10, 10, 1),
        _bucket("alpha", 10, 10, 1),
        _bucket("zeta", 0, 10, 1),
        _bucket("alpha", 0, 10, 1),
    ]
    report = _report([], buckets, seconds=20)
    assert [(b.event_type, b.start) for b in report.buckets] == [
        ("alpha", _at(0)),
        ("alpha", _at(10)),
        ("zeta", _at(0)),
        ("zeta", _at(10)),
        ("all", _at(0)),
        ("all", _at(10)),
    ]


def test_per_type_rates_add_up_to_the_all_row() -> None:
    rng = random.Random(7)
    per_type = [
        TypeTotals(name, arrivals=rng.randrange(1000), completions=rng.randrange(1000)) for name in ("a", "b", "c")
    ]
    overall = TypeTotals(
        OVERALL,
        arrivals=sum(t.arrivals for t in per_type),
        completions=sum(t.completions for t in per_type),
    )
    report = _report([*per_type, overall], seconds=37.5)
    *rows, total = report.rows
    assert total.arrival_rate == pytest.approx(sum(r.arrival_rate for r in rows))
    assert total.processing_rate == pytest.approx(sum(r.processing_rate for r in rows))
    assert total.arrival_rate == pytest.approx(overall.arrivals / 37.5)


def test_generated_at_must_be_aware_and_is_normalised_to_utc() -> None:
    window = Window(T0, _at(60))
    with pytest.raises(ValueError, match="timezone-aware"):
        build_report([], [], window=window, generated_at=datetime(2025, 1, 1), report_id="r", target_p99_seconds=1)
    plus_two = timezone(timedelta(hours=2))
    report = build_report(
        [], [], window=window, generated_at=_at(65).astimezone(plus_two), report_id="r", target_p99_seconds=1
    )
    assert report.generated_at == _at(65)
    assert report.generated_at.utcoffset() == timedelta(0)


def test_clock_skew_is_the_all_totals_when_some_events_were_skewed() -> None:
    overall = TypeTotals(OVERALL, arrivals=10, skewed=3, max_skew_seconds=1.5)
    assert _report([TypeTotals("a", arrivals=10, skewed=3), overall]).clock_skew == overall
    assert _report([TypeTotals("a", arrivals=10), TypeTotals(OVERALL, arrivals=10)]).clock_skew is None


# --- Little's law (the check itself is tests/metrics/test_little.py) -------------------------------------


def test_build_report_checks_little_per_row_from_the_samples() -> None:
    totals = [
        TypeTotals("a", arrivals=2, backlog_seconds=6.0, sojourn_seconds=6.0),
        TypeTotals("b", arrivals=4, completions=4),
        TypeTotals(OVERALL, arrivals=6, backlog_seconds=6.0, sojourn_seconds=6.0),
    ]
    sample = BacklogSample(
        sampled_seconds=6.0, counted_seconds=6.0, changes=4, watched_seconds=10.0, period_seconds=0.1
    )
    window = Window(T0, T0 + timedelta(seconds=10))
    report = build_report(
        totals,
        [],
        window=window,
        generated_at=window.end,
        report_id="r",
        target_p99_seconds=5.0,
        samples={"a": sample, OVERALL: sample},
    )
    a, b, overall = report.rows
    assert report.sampled
    assert a.little is not None and a.little.verdict == "holds"
    assert a.little.sampled_backlog == pytest.approx(0.6)
    assert b.little is None  # nothing in the system by either count
    assert overall.little is not None
    unsampled = _report(totals, seconds=10.0)
    assert not unsampled.sampled
    assert all(row.little is None for row in unsampled.rows)


# --- the capacity forecast -----------------------------------------------------------------------------

# λ = 400/10 s = 40/s; capacity = 400 stored / 8 busy-s = 50/s. M/M/1 time in system is Exp(μ − λ) = Exp(10):
# median ln2/10, p99 ln(100)/10.


def _loaded(p50: float, *, arrivals: int = 400, busy_seconds: float = 8.0, target: float = 10.0) -> Report:
    totals = TypeTotals(
        "a", arrivals=arrivals, completions=400, busy_seconds=busy_seconds, stages={"latency": _latency(p50)}
    )
    overall = TypeTotals(
        OVERALL, arrivals=arrivals, completions=400, busy_seconds=busy_seconds, stages={"latency": _latency(p50)}
    )
    return _report([totals, overall], seconds=10.0, target=target)


def test_forecast_when_the_measured_median_is_the_models() -> None:
    fc = _loaded(LN2 / 10).row("a").forecast
    assert fc is not None
    assert fc.model == MODEL
    assert fc.servers == 1
    assert fc.arrival_rate == pytest.approx(40.0)
    assert fc.service_rate == pytest.approx(50.0)
    assert fc.utilisation == pytest.approx(0.8)
    assert fc.saturation_rate == pytest.approx(50.0)
    assert fc.quantile == 0.99
    assert fc.target_seconds == 10.0
    assert fc.fixed_delay == pytest.approx(0.0, abs=1e-6)
    assert fc.latency_quantile == pytest.approx(LN100 / 10, rel=1e-6)
    assert fc.workers_needed == 1  # one worker's p99 of 0.46 s is well within 10 s


def test_forecast_fixed_delay_is_what_queueing_does_not_explain() -> None:
    fc = _loaded(5.0).row("a").forecast
    assert fc is not None
    assert fc.fixed_delay == pytest.approx(5.0 - LN2 / 10, rel=1e-6)
    assert fc.latency_quantile == pytest.approx(5.0 - LN2 / 10 + LN100 / 10, rel=1e-6)


def test_forecast_fixed_delay_is_never_negative() -> None:
    fc = _loaded(0.01).row("a").forecast  # measured median below the model's 0.069 s
    assert fc is not None
    assert fc.fixed_delay == 0.0
    assert fc.latency_quantile == pytest.approx(LN100 / 10, rel=1e-6)


def test_forecast_with_a_fixed_delay_over_the_target_needs_no_number_of_workers() -> None:
    fc = _loaded(5.0, target=1.0).row("a").forecast
    assert fc is not None
    assert fc.workers_needed is None


@pytest.mark.parametrize("arrivals", [500, 600])  # λ = 50/s (= capacity) and 60/s
def test_forecast_when_unstable(arrivals: int) -> None:
    fc = _loaded(5.0, arrivals=arrivals).row("a").forecast
    assert fc is not None
    assert fc.arrival_rate == pytest.approx(arrivals / 10)
    assert fc.utilisation == pytest.approx(arrivals / 10 / 50)
    assert fc.latency_quantile == math.inf
    assert fc.fixed_delay == 0.0


def test_no_forecast_for_the_all_row() -> None:
    report = _loaded(LN2 / 10)
    assert report.row("a").forecast is not None
    assert report.row("all").forecast is None


def test_no_forecast_without_busy_time_completions_or_latency() -> None:
    assert _loaded(1.0, busy_seconds=0.0).row("a").forecast is None
    no_completions = TypeTotals("a", arrivals=10, busy_seconds=1.0, stages={"latency": _latency(1.0)})
    assert _report([no_completions]).row("a").forecast is None
    no_latency = TypeTotals("a", arrivals=10, completions=10, busy_seconds=1.0, stages={"latency": None})
    assert _report([no_latency]).row("a").forecast is None
