"""The report against loads whose truth is known, through a real DuckDB file and the real report queries.

`bench.known_load` simulates Poisson arrivals at a set λ served by workers with a set service-time
distribution; the simulated events are stored like the pipeline stores them, and the report must
find the λ and μ put in (within 2 %), percentiles an independent recomputation from the raw
timestamps finds (within 5 %), and Little's law checked against the simulated queue's samples: holding on
honest data, failing when rows or timestamps are changed behind the report's back.
"""

from __future__ import annotations

import dataclasses
import math
import random
import statistics
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.known_load import Burst, Served, poisson_offsets, serve, service_times, stored_events, write_samples
from flowhook.metrics import OVERALL, Report, Window
from flowhook.metrics.render._shared import warnings
from flowhook.reporting import window_report
from flowhook.spool import Spool
from flowhook.store import DuckDBStore, StoredEvent
from tests.factories import make_event

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _quantiles(values: Sequence[float]) -> tuple[float, float, float]:
    """p50, p95, p99 by the standard library (linear interpolation between closest ranks)."""
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[94], cuts[98]


def _report(
    db: DuckDBStore,
    start: float,
    end: float,
    *,
    bucket: float = 60.0,
    spool: Spool | None = None,
    now: float | None = None,
    samples: Path | None = None,
) -> Report:
    window = Window(_at(start), _at(end), bucket)
    return window_report(
        db, spool, window, target_p99_seconds=5.0, now=_at(end if now is None else now), samples_dir=samples
    )


@pytest.fixture
def db(tmp_path: Path) -> DuckDBStore:
    return DuckDBStore(tmp_path / "flowhook.duckdb")


# --- a known steady load: M/M/1 at λ = 40/s, μ = 50/s (ρ = 0.8) for 10 minutes --------------------

RATE, SERVICE_MEAN, SECONDS = 40.0, 0.020, 600.0


@pytest.fixture(scope="module")
def mm1() -> list[Served]:
    rng = random.Random(2026)
    arrivals = poisson_offsets(RATE, SECONDS, rng)
    return serve(arrivals, service_times(len(arrivals), SERVICE_MEAN, rng))


@pytest.fixture
def mm1_samples(mm1: list[Served], tmp_path: Path) -> Path:
    """The gateway's samples of the simulated queue, as its sampler writes them."""
    folder = tmp_path / "samples"
    write_samples(mm1, start=T0, event_type="sim", folder=folder)
    return folder


@pytest.fixture
def mm1_report(db: DuckDBStore, mm1: list[Served], mm1_samples: Path) -> Report:
    db.write_events(stored_events(mm1, start=T0, event_type="sim"))
    return _report(db, 0.0, SECONDS, now=SECONDS + 60, samples=mm1_samples)


def test_rates_are_the_known_load_within_2_percent(mm1_report: Report, mm1: list[Served]) -> None:
    row = mm1_report.row("sim")
    assert row.arrival_rate == pytest.approx(RATE, rel=0.02)
    assert row.capacity == pytest.approx(1 / SERVICE_MEAN, rel=0.02)
    # Against the sample itself the figures are exact: N and M counted, busy time summed.
    assert row.totals.arrivals == len(mm1)
    completed = [s for s in mm1 if s.done < SECONDS]
    assert row.totals.completions == len(completed)
    assert row.processing_rate == pytest.approx(len(completed) / SECONDS)
    assert row.capacity == pytest.approx(len(completed) / sum(s.done - s.started for s in completed), rel=1e-6)
    assert row.throughput == min(row.arrival_rate, row.processing_rate)
    assert row.tau_seconds == pytest.approx(1 / row.throughput)
    assert row.utilisation == pytest.approx(RATE * SERVICE_MEAN, rel=0.03)
    assert row.totals.in_flight == len(mm1) - len(completed)


def test_percentiles_match_an_independent_recomputation_within_5_percent(mm1_report: Report, mm1: list[Served]) -> None:
    done = [s for s in mm1 if s.done < SECONDS]
    expected = {
        "latency": [s.done - s.arrived for s in done],
        "woken": [s.started - s.arrived for s in done],  # emitted on arrival: the wait in the queue
        "processed": [s.done - s.started for s in done],
        "end_to_end": [s.done - s.arrived + 0.05 for s in done],  # occurred 50 ms before arrival
    }
    for stage, values in expected.items():
        stats = mm1_report.row("sim").totals.stages[stage]
        assert stats is not None and stats.count == len(values)
        for got, want in zip((stats.p50, stats.p95, stats.p99), _quantiles(values), strict=True):
            assert got == pytest.approx(want, rel=0.05), stage
        assert stats.max == pytest.approx(max(values), abs=2e-6)
        assert stats.mean == pytest.approx(statistics.fmean(values), rel=1e-4)


def test_littles_law_holds_on_honest_data(mm1_report: Report, mm1: list[Served]) -> None:
    little = mm1_report.row("sim").little
    assert little is not None and little.verdict == "holds", little
    # Event-seconds in the system, computed independently from the simulation, clipped to the window.
    in_system = sum(max(0.0, min(s.done, SECONDS) - s.arrived) for s in mm1)
    watched = little.sample.watched_seconds
    assert watched == SECONDS  # every second of the window was sampled
    assert little.sample.counted_seconds == pytest.approx(in_system, rel=1e-4)
    assert little.sampled_backlog == pytest.approx(in_system / SECONDS, rel=0.01)
    assert little.gap < 0.01


def _tampered(db: DuckDBStore, samples: Path, sql: str) -> Report:
    with db.connect() as con:
        con.execute(sql)
    return _report(db, 0.0, SECONDS, now=SECONDS + 60, samples=samples)


def test_littles_law_fails_when_rows_are_lost_behind_the_reports_back(
    db: DuckDBStore, mm1: list[Served], mm1_samples: Path
) -> None:
    db.write_events(stored_events(mm1, start=T0, event_type="sim"))
    # One event in ten vanishes from the store: its time in the system is then missing from λ × W.
    report = _tampered(db, mm1_samples, "DELETE FROM events WHERE hash(id) % 10 = 0")
    little = report.row("sim").little
    assert little is not None and little.verdict == "fails"
    assert little.gap == pytest.approx(0.1, abs=0.03)
    assert any(note.startswith("Little's law fails for sim:") for note in warnings(report))


def test_littles_law_fails_when_timestamps_are_shifted(db: DuckDBStore, mm1: list[Served], mm1_samples: Path) -> None:
    db.write_events(stored_events(mm1, start=T0, event_type="sim"))
    mean = statistics.fmean(s.done - s.arrived for s in mm1)
    # Every `stored` moved later by a fifth of the mean time in system: λ × W grows by a fifth.
    report = _tampered(db, mm1_samples, f"UPDATE events SET stored = stored + to_microseconds({round(mean * 2e5)})")
    little = report.row("sim").little
    assert little is not None and little.verdict == "fails"
    assert little.counted_backlog > little.sampled_backlog * 1.15


def test_littles_law_is_incomplete_where_the_sampler_did_not_watch(
    db: DuckDBStore, mm1: list[Served], mm1_samples: Path
) -> None:
    db.write_events(stored_events(mm1, start=T0, event_type="sim"))
    for path in sorted(mm1_samples.iterdir())[:2]:  # the first two minutes' samples are lost
        path.unlink()
    little = _report(db, 0.0, SECONDS, now=SECONDS + 60, samples=mm1_samples).row("sim").little
    assert little is not None and little.verdict == "incomplete"
    assert little.watched_share == pytest.approx(0.8, abs=0.03)
    assert little.gap < 0.01  # what was watched still agrees


def test_the_mm1_forecast_agrees_with_the_measured_tail(mm1_report: Report) -> None:
    row = mm1_report.row("sim")
    assert row.forecast is not None and row.latency is not None
    # For M/M/1 the time in system is exponential with rate μ − λ: its p99 is ln(100)/(μ − λ).
    assert row.forecast.latency_quantile == pytest.approx(math.log(100) / (1 / SERVICE_MEAN - RATE), rel=0.1)
    assert row.forecast.latency_quantile == pytest.approx(row.latency.p99, rel=0.15)
    assert row.forecast.fixed_delay < 0.02  # queueing explains the whole latency here
    assert row.forecast.saturation_rate == pytest.approx(row.capacity)


def test_buckets_count_arrivals_completions_and_backlog(mm1_report: Report, mm1: list[Served]) -> None:
    buckets = [b for b in mm1_report.buckets if b.event_type == "sim"]
    assert len(buckets) == 10 and [b.event_type for b in mm1_report.buckets].count(OVERALL) == 10
    for i, bucket in enumerate(buckets):
        lo, hi = 60.0 * i, 60.0 * (i + 1)
        assert bucket.start == _at(lo)
        assert bucket.arrivals == sum(1 for s in mm1 if lo <= s.arrived < hi)
        assert bucket.completions == sum(1 for s in mm1 if lo <= s.done < hi)
        assert bucket.backlog == sum(1 for s in mm1 if s.arrived < hi <= s.done)
        assert bucket.latency is not None
        p50, _, p99 = _quantiles([s.done - s.arrived for s in mm1 if lo <= s.done < hi])
        assert (bucket.latency.p50, bucket.latency.p99) == (pytest.approx(p50, abs=2e-6), pytest.approx(p99, abs=2e-6))
    assert mm1_report.row("sim").peak_arrival_rate == max(b.arrivals for b in buckets) / 60.0


# --- a burst: the report must see it and say the window is not in steady state ---------------------


def test_a_burst_shows_in_the_buckets_and_little_still_holds(db: DuckDBStore, tmp_path: Path) -> None:
    rng = random.Random(11)
    burst = Burst(start=120.0, seconds=20.0, rate=200.0)
    arrivals = poisson_offsets(30.0, 180.0, rng, burst=burst)
    served = serve(arrivals, service_times(len(arrivals), 0.01, rng, distribution="lognormal"), workers=2)
    db.write_events(stored_events(served, start=T0, event_type="bursty"))
    samples = tmp_path / "samples"
    write_samples(served, start=T0, event_type="bursty", folder=samples)

    # Buckets of 10 s: the burst fills buckets 12 and 13 at about 230/s.
    whole = _report(db, 0.0, 180.0, bucket=10.0, now=400.0)
    row = whole.row("bursty")
    assert row.peak_arrival_rate == pytest.approx(230.0, rel=0.15)
    burst_buckets = [b for b in whole.buckets if b.event_type == "bursty" and _at(120) <= b.start < _at(140)]
    assert all(b.backlog > 50 for b in burst_buckets)  # 2 workers at ~200/s cannot keep up with ~230/s
    assert row.totals.workers == 2

    # A window closing mid-burst cuts through a busy period: Little's law, checked from the samples, still holds
    # (both counts see the same event-seconds: steady state is not needed); the backlog shows the burst.
    cut = _report(db, 0.0, 135.0, bucket=10.0, now=400.0, samples=samples)
    little = cut.row("bursty").little
    assert little is not None and little.verdict == "holds", little
    assert cut.row("bursty").totals.in_flight > 50
    assert cut.row("bursty").totals.backlog_end == cut.row("bursty").totals.in_flight


# --- edge cases ---------------------------------------------------------------------------------


def _event(
    n: int,
    *,
    received: float,
    stored: float | None,
    occurred: float | None = None,
    event_type: str = "user_request",
    status: str = "ok",
) -> StoredEvent:
    return StoredEvent(
        id=f"e{n}",
        type=event_type,
        source="test",
        occurred=_at(received if occurred is None else occurred),
        received=_at(received),
        emitted=_at(received + 0.5),
        started=None if stored is None else _at(stored - 0.1),
        stored=None if stored is None else _at(stored),
        batch_id=f"b{n}",
        flow_run_id="run-1",
        status=status,
        error=None if status == "ok" else "boom",
        data={},
        result=None,
    )


def test_an_empty_window_reports_zeros_and_no_model_figures(db: DuckDBStore) -> None:
    db.write_events([_event(1, received=500.0, stored=501.0)])  # outside the window
    report = _report(db, 0.0, 60.0, bucket=10.0)
    assert [r.event_type for r in report.rows] == [OVERALL]
    (row,) = report.rows
    assert (row.totals.arrivals, row.totals.completions, row.arrival_rate, row.processing_rate) == (0, 0, 0.0, 0.0)
    assert row.tau_seconds is None and row.capacity is None and row.little is None and row.forecast is None
    assert row.latency is None
    assert len(report.buckets) == 6 and all(b.arrivals == b.completions == b.backlog == 0 for b in report.buckets)


def test_one_event(db: DuckDBStore) -> None:
    db.write_events([_event(1, received=10.0, stored=12.5)])
    row = _report(db, 0.0, 60.0).row("user_request")
    assert (row.totals.arrivals, row.totals.completions) == (1, 1)
    assert row.arrival_rate == pytest.approx(1 / 60)
    assert row.latency is not None
    assert row.latency.p50 == row.latency.p99 == row.latency.max == pytest.approx(2.5)
    assert row.totals.busy_seconds == pytest.approx(0.1)
    assert row.little is None  # no sample of the queue covers the window: not checked


def test_a_step_stored_before_handled_existed_is_busy_time_but_no_capacity_sample(db: DuckDBStore) -> None:
    from flowhook.reporting import collect

    # Two steps of one run: an older one without `handled` (written before the column existed) and one with it.
    old = dataclasses.replace(_event(1, received=10.0, stored=12.0), flow_run_id="run-old")
    new = [
        dataclasses.replace(_event(n, received=20.0, stored=22.0), started=_at(21.0), handled=_at(21.5)) for n in (2, 3)
    ]
    db.write_events([old, *new])
    found = collect(db, Window(_at(0.0), _at(60.0), 60.0), in_flight=[], now=_at(60.0))
    (totals,) = [t for t in found.totals if t.event_type == "user_request"]
    assert (totals.steps, totals.workers) == (2, 2)
    assert totals.busy_seconds == pytest.approx(0.1 + 1.0)
    (step,) = found.steps
    assert (step.event_type, step.events) == ("user_request", 2)
    assert (step.handle_seconds, step.write_seconds) == (pytest.approx(0.5), pytest.approx(0.5))


def test_events_in_flight_in_the_spool_count_as_arrivals_and_backlog(db: DuckDBStore, tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    db.write_events([_event(1, received=10.0, stored=11.0)])
    # Three events received but not stored: a sealed batch in the spool. One of them (e1) is the stored
    # event again (a claimed batch whose file is not retired yet): it must not count twice.
    flying = [make_event(n).model_copy(update={"received": _at(20.0 + n)}) for n in (1, 2, 3)]
    spool.write_batch(flying)
    report = _report(db, 0.0, 60.0, bucket=30.0, spool=spool)
    row = report.row("user_request")
    assert (row.totals.arrivals, row.totals.completions, row.totals.in_flight) == (3, 1, 2)
    assert row.totals.backlog_end == 2
    assert [b.backlog for b in report.buckets if b.event_type == "user_request"] == [2, 2]
    # Their time in system so far (to the report's time) counts towards Little's L and W alike.
    assert row.totals.backlog_seconds == pytest.approx(1.0 + (60 - 22) + (60 - 23))


def test_clock_skew_is_measured_and_flagged(db: DuckDBStore) -> None:
    # The sender's clock runs 5 s ahead: its events say they occurred after flowhook received them.
    db.write_events([_event(1, received=10.0, stored=11.0, occurred=15.0), _event(2, received=20.0, stored=21.0)])
    report = _report(db, 0.0, 60.0)
    assert report.clock_skew is not None
    assert report.clock_skew.skewed == 1 and report.clock_skew.max_skew_seconds == pytest.approx(5.0)
    sent = report.row("user_request").totals.stages["sent"]
    assert sent is not None and sent.p50 == pytest.approx(-2.5)  # measured as is, not clipped
    # Stages on flowhook's own clock are unaffected.
    latency = report.row("user_request").latency
    assert latency is not None and latency.max == pytest.approx(1.0)


def test_an_event_from_before_the_window_is_a_completion_and_backlog_not_an_arrival(db: DuckDBStore) -> None:
    db.write_events(
        [
            _event(1, received=-30.0, stored=5.0),  # was waiting when the window opened
            _event(2, received=10.0, stored=70.0),  # still in the system when it closes
            _event(3, received=20.0, stored=21.0, status="failed"),
        ]
    )
    row = _report(db, 0.0, 60.0, now=80.0).row("user_request")
    t = row.totals
    assert (t.arrivals, t.completions, t.failed, t.in_flight) == (2, 2, 1, 1)
    assert (t.backlog_start, t.backlog_end) == (1, 1)
    assert t.backlog_seconds == pytest.approx(5.0 + 50.0 + 1.0)
    assert t.sojourn_seconds == pytest.approx(60.0 + 1.0)
    assert row.little is None


def test_the_window_end_is_clipped_to_now(db: DuckDBStore) -> None:
    db.write_events([_event(1, received=10.0, stored=11.0)])
    report = window_report(db, None, Window(_at(0), _at(3600), 60.0), target_p99_seconds=5.0, now=_at(120))
    assert report.window.end == _at(120)
    assert report.row("user_request").arrival_rate == pytest.approx(1 / 120)
    assert len([b for b in report.buckets if b.event_type == OVERALL]) == 2


# --- the trigger path's heartbeat, checked at report time ----------------------------------------------


def test_the_report_checks_the_heartbeat_in_the_store_as_of_now(db: DuckDBStore) -> None:
    tick = dataclasses.replace(
        _event(1, received=100.0, stored=103.0, occurred=99.5, event_type="scheduled_tick"), source="schedule"
    )
    db.write_events([tick, _event(2, received=900.0, stored=901.0)])  # a later event of another kind
    window = Window(_at(0), _at(1000), 60.0)
    assert window_report(db, None, window, target_p99_seconds=5.0, now=_at(1000)).heartbeat is None  # not asked
    fresh = window_report(db, None, window, target_p99_seconds=5.0, now=_at(700), heartbeat_max_age_seconds=660)
    assert fresh.heartbeat is not None and fresh.heartbeat.status == "healthy"
    assert fresh.heartbeat.last_stored == _at(103) and fresh.heartbeat.end_to_end_seconds == pytest.approx(3.5)
    stale = window_report(db, None, window, target_p99_seconds=5.0, now=_at(1000), heartbeat_max_age_seconds=660)
    assert stale.heartbeat is not None and stale.heartbeat.status == "unhealthy"
    assert stale.heartbeat.age_seconds == pytest.approx(897)
    # The check adds to the report and changes none of its figures.
    plain = window_report(db, None, window, target_p99_seconds=5.0, now=_at(1000))
    assert stale.rows == plain.rows and stale.buckets == plain.buckets


def test_no_heartbeat_on_a_stack_up_for_long_is_unhealthy_in_the_report(db: DuckDBStore) -> None:
    window = Window(_at(0), _at(1000), 60.0)
    report = window_report(
        db, None, window, target_p99_seconds=5.0, now=_at(1000), heartbeat_max_age_seconds=660, up_since=_at(0)
    )
    assert report.heartbeat is not None and report.heartbeat.status == "unhealthy"
    assert report.heartbeat.reason.startswith("no heartbeat ever stored, and the stack has been up for 17 min")
