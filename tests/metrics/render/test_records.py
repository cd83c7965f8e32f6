"""The report as data: the table artifact's rounded rows, the unrounded JSON, and the store's report rows."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone

import pytest

from flowhook.metrics.render import DEFINITIONS, to_json_dict, to_store_rows, to_table_rows
from flowhook.metrics.report import Report, Window, build_report
from flowhook.store.duckdb_store import REPORT_TABLES
from tests.metrics.render.reports import (
    LN2,
    LN100,
    T0,
    at,
    empty_report,
    one_event_report,
    sample_report,
    unstable_report,
)


def test_table_rows_are_flat_rounded_and_json_able() -> None:
    report = sample_report()
    rows = to_table_rows(report)
    json.dumps(rows, allow_nan=False)
    assert [r["type"] for r in rows] == ["order.created", "payment.settled", "all"]
    assert all(not isinstance(v, dict | list) for row in rows for v in row.values())
    order, payment, overall = rows
    assert (order["N"], order["M"], order["failed"], order["in flight"]) == (30, 24, 1, 6)
    assert order["λ (ev/s)"] == 0.5
    assert order["peak λ (ev/s)"] == 0.7
    assert order["capacity (ev/busy-s)"] == 6.0
    assert order["ρ"] == 0.08333
    assert order["τ = 1/θ (s, seed model)"] == 2.5
    assert (order["p50 (s)"], order["p95 (s)"], order["p99 (s)"], order["max (s)"]) == (0.8, 1.5, 1.9, 2.0)
    assert order["Little gap"] == 0.0
    assert order["workers for target"] == 1
    assert payment["λ (ev/s)"] == 0.3333
    assert payment["capacity (ev/busy-s)"] is None
    assert payment["ρ"] is None
    assert payment["Little gap"] == 0.5
    assert payment["workers for target"] is None
    assert overall["μ (ev/s)"] == 0.7333
    assert overall["τ = 1/θ (s, seed model)"] == 1.364
    assert overall["Little gap"] == 0.2857
    assert overall["workers for target"] is None  # no forecast for "all"


def test_json_dict_is_unrounded_with_iso_datetimes() -> None:
    data = json.loads(json.dumps(to_json_dict(sample_report()), allow_nan=False))
    assert data["report_id"] == "r-1"
    assert data["generated_at"] == "2025-01-01T00:01:05+00:00"
    assert data["window_start"] == "2025-01-01T00:00:00+00:00"
    assert data["window_end"] == "2025-01-01T00:01:00+00:00"
    assert (data["span_seconds"], data["bucket_seconds"], data["target_p99_seconds"]) == (60.0, 20.0, 10.0)
    assert [r["event_type"] for r in data["rows"]] == ["order.created", "payment.settled", "all"]
    order, payment, overall = data["rows"]
    assert payment["arrival_rate"] == pytest.approx(1 / 3, rel=1e-12)  # not rounded to 0.3333
    assert order["utilisation"] == pytest.approx(0.5 / 6, rel=1e-12)
    assert order["stages"]["sent"] is None
    assert order["stages"]["latency"] == {"count": 24, "mean": 0.9, "p50": 0.8, "p95": 1.5, "p99": 1.9, "max": 2.0}
    assert set(order["stages"]) == {"sent", "batched", "woken", "processed", "latency", "end_to_end"}
    assert order["little"]["verdict"] == "holds"
    assert payment["little"]["verdict"] == "fails"
    assert payment["little"]["gap"] == pytest.approx(0.5)
    assert (payment["little"]["sampled_seconds"], payment["little"]["counted_seconds"]) == (20.0, 40.0)
    assert order["forecast"]["fixed_delay"] == pytest.approx(0.8 - LN2 / 5.5, rel=1e-6)
    assert order["forecast"]["latency_quantile"] == pytest.approx(0.8 - LN2 / 5.5 + LN100 / 5.5, rel=1e-6)
    assert payment["forecast"] is None
    assert overall["forecast"] is None
    assert overall["clock_skew"] == {"events": 3, "max_seconds": 1.25}
    assert len(data["buckets"]) == 9
    assert [(b["event_type"], b["start"]) for b in data["buckets"][:2]] == [
        ("order.created", "2025-01-01T00:00:00+00:00"),
        ("order.created", "2025-01-01T00:00:20+00:00"),
    ]
    assert data["buckets"][1]["arrival_rate"] == pytest.approx(14 / 20)
    assert data["definitions"] == {d.term: d.meaning for d in DEFINITIONS}


def test_json_dict_of_an_unstable_forecast_has_null_for_infinity() -> None:
    json.dumps(to_table_rows(unstable_report()), allow_nan=False)
    text = json.dumps(to_json_dict(unstable_report()), allow_nan=False)
    fc = json.loads(text)["rows"][0]["forecast"]
    assert fc["latency_quantile"] is None
    assert fc["utilisation"] == pytest.approx(1.2)
    assert fc["fixed_delay"] == 0.0


def test_json_dict_normalises_datetimes_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    report = build_report(
        [],
        [],
        window=Window(T0.astimezone(plus_two), at(60).astimezone(plus_two)),
        generated_at=at(65).astimezone(plus_two),
        report_id="r-2",
        target_p99_seconds=10.0,
    )
    data = to_json_dict(report)
    assert data["window_start"] == "2025-01-01T00:00:00+00:00"
    assert data["generated_at"] == "2025-01-01T00:01:05+00:00"


def _columns(table: str) -> set[str]:
    return {name for name, _ in REPORT_TABLES[table]}


@pytest.mark.parametrize(
    "report",
    [sample_report(), unstable_report(), empty_report(), one_event_report()],
    ids=lambda r: r.rows[0].event_type,
)
def test_store_rows_have_exactly_the_tables_columns(report: Report) -> None:
    rows = to_store_rows(report)
    assert set(rows) == set(REPORT_TABLES)
    for table, table_rows in rows.items():
        for row in table_rows:
            assert set(row) == _columns(table), table


def test_store_rows_by_hand() -> None:
    rows = to_store_rows(sample_report(), chart_path="reports/r-1.png")
    reports, stages, buckets = rows["reports"], rows["report_stages"], rows["report_buckets"]
    assert all(row["report_id"] == "r-1" for table in rows.values() for row in table)
    assert [r["event_type"] for r in reports] == ["order.created", "payment.settled", "all"]
    order, payment, overall = reports
    assert (order["n"], order["m"], order["failed"], order["in_flight"]) == (30, 24, 1, 6)
    assert order["arrival_rate"] == pytest.approx(0.5)
    assert order["capacity"] == pytest.approx(6.0)
    assert order["utilisation"] == pytest.approx(0.5 / 6)
    assert order["tau_seconds"] == pytest.approx(2.5)
    assert order["p99_seconds"] == 1.9
    assert order["little_verdict"] == "holds"
    assert order["saturation_rate"] == pytest.approx(6.0)
    assert order["forecast_p99_seconds"] == pytest.approx(0.8 - LN2 / 5.5 + LN100 / 5.5, rel=1e-6)
    assert order["workers_needed"] == 1
    assert order["chart_path"] == "reports/r-1.png"
    assert order["span_seconds"] == 60.0
    assert order["target_p99_seconds"] == 10.0
    assert payment["capacity"] is None
    assert payment["little_verdict"] == "fails"
    assert payment["saturation_rate"] is None
    assert (overall["skewed"], overall["max_skew_seconds"]) == (3, 1.25)
    assert overall["little_gap"] == pytest.approx(20 / 70)
    assert overall["mean_backlog"] == pytest.approx(50 / 60)  # sampled
    assert overall["little_predicted"] == pytest.approx(70 / 60)  # from the timestamps
    # Stage rows only where there are figures ("sent" is None, the rest absent).
    assert [(s["event_type"], s["stage"], s["span"], s["count"]) for s in stages] == [
        ("order.created", "batched", "received→emitted", 24),
        ("order.created", "latency", "received→stored", 24),
        ("payment.settled", "latency", "received→stored", 20),
        ("all", "latency", "received→stored", 44),
    ]
    assert stages[0]["mean_seconds"] == 0.3
    assert stages[0]["max_seconds"] == 0.7
    # One bucket row per BucketTotals.
    assert len(buckets) == 9
    assert [(b["event_type"], b["bucket_start"]) for b in buckets[:3]] == [
        ("order.created", at(0)),
        ("order.created", at(20)),
        ("order.created", at(40)),
    ]
    assert buckets[1]["arrivals"] == 14
    assert buckets[1]["arrival_rate"] == pytest.approx(0.7)
    assert buckets[1]["processing_rate"] == pytest.approx(13 / 20)
    assert buckets[0]["p50_seconds"] == 0.4


def test_store_rows_datetimes_are_aware_utc() -> None:
    rows = to_store_rows(sample_report())
    values = [
        *(r[k] for r in rows["reports"] for k in ("generated_at", "window_start", "window_end")),
        *(b["bucket_start"] for b in rows["report_buckets"]),
    ]
    assert values
    for value in values:
        assert isinstance(value, datetime)
        assert value.utcoffset() == timedelta(0)


def test_store_rows_of_an_unstable_forecast_have_no_infinity() -> None:
    (hot, overall) = to_store_rows(unstable_report())["reports"]
    assert hot["forecast_p99_seconds"] is None
    assert hot["utilisation"] == pytest.approx(60 / 50)
    assert hot["workers_needed"] == 2
    assert all(not (isinstance(v, float) and not math.isfinite(v)) for v in hot.values())
    assert overall["forecast_p99_seconds"] is None
