"""Pure tests of the window metrics: percentile, build_report's definitions and the renderers."""

from __future__ import annotations

import json
import math
import random
import statistics
from datetime import UTC, datetime, timedelta, timezone

import pytest
from rich.console import Console

from flowhook.metrics import (
    EventTimes,
    LatencyStats,
    Report,
    TypeReport,
    build_report,
    latency_stats,
    percentile,
    to_json_dict,
    to_markdown,
    to_rich_table,
    to_store_rows,
    to_table_rows,
)
from flowhook.metrics.render import _fmt

T0 = datetime(2025, 1, 1, tzinfo=UTC)
GENERATED = T0 + timedelta(hours=2)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _report(times: list[EventTimes], start: float = 0.0, end: float = 3600.0) -> Report:
    return build_report(times, window_start=_at(start), window_end=_at(end), generated_at=GENERATED, report_id="r-1")


def _row(report: Report, event_type: str) -> TypeReport:
    (row,) = [r for r in report.rows if r.event_type == event_type]
    return row


def _steady_load(types: tuple[str, ...] = ("a", "b")) -> list[EventTimes]:
    """1,000 events per type at exactly 100/s (every 10 ms from T0), each stored 0.2 s after receipt
    and sent 0.05 s before it."""
    times: list[EventTimes] = []
    for event_type in types:
        for i in range(1000):
            received = T0 + timedelta(milliseconds=10 * i)
            times.append(
                (
                    event_type,
                    received - timedelta(milliseconds=50),
                    received,
                    received + timedelta(seconds=0.2),
                )
            )
    return times


# --- percentile ------------------------------------------------------------------------------------


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


@pytest.mark.parametrize(("values", "q"), [([], 0.5), ([1.0], -0.01), ([1.0], 1.01), ([1.0], math.nan)])
def test_percentile_rejects_empty_input_and_q_outside_unit_interval(values: list[float], q: float) -> None:
    with pytest.raises(ValueError):
        percentile(values, q)


def test_latency_stats() -> None:
    assert latency_stats([]) is None
    assert latency_stats([0.4, 0.1, 0.3, 0.2]) == LatencyStats(
        count=4, p50=pytest.approx(0.25), p95=pytest.approx(0.385), p99=pytest.approx(0.397), max=0.4
    )


# --- build_report ----------------------------------------------------------------------------------


def test_steady_load_rates_match_hand_computed_values() -> None:
    report = _report(_steady_load())
    # Last receipt at 9.99 s, stored at 10.19 s: T = 10.19 s; λ = μ = 1000 / 10.19 per type.
    assert report.span_start == T0
    assert report.span_end == _at(10.19)
    assert [r.event_type for r in report.rows] == ["a", "b", "all"]
    for event_type in ("a", "b"):
        row = _row(report, event_type)
        assert (row.n, row.m, row.in_flight) == (1000, 1000, 0)
        assert row.span_seconds == pytest.approx(10.19)
        assert row.arrival_rate == pytest.approx(98.1354, abs=1e-4)
        assert row.processing_rate == pytest.approx(98.1354, abs=1e-4)
        assert row.throughput == pytest.approx(98.1354, abs=1e-4)
        assert row.tau_seconds == pytest.approx(0.01019)
        assert row.latency == LatencyStats(count=1000, p50=0.2, p95=0.2, p99=0.2, max=0.2)
        assert row.end_to_end == LatencyStats(count=1000, p50=0.25, p95=0.25, p99=0.25, max=0.25)
    overall = _row(report, "all")
    assert (overall.n, overall.m) == (2000, 2000)
    assert overall.arrival_rate == pytest.approx(196.2709, abs=1e-4)
    assert overall.throughput == pytest.approx(196.2709, abs=1e-4)
    assert overall.tau_seconds == pytest.approx(0.005095)


def test_window_cutting_off_stores_makes_throughput_the_processing_rate() -> None:
    # Window [0, 10): all 1,000 arrive, but receipts from 9.80 s on are stored at >= 10.00 s.
    report = _report(_steady_load(("a",)), end=10.0)
    row = _row(report, "a")
    assert (row.n, row.m, row.in_flight) == (1000, 980, 20)
    assert row.span_seconds == pytest.approx(9.99)  # last receipt and last store both at 9.99 s
    assert row.arrival_rate == pytest.approx(1000 / 9.99)
    assert row.processing_rate == pytest.approx(980 / 9.99)
    assert row.throughput == pytest.approx(98.0981, abs=1e-4)
    assert row.tau_seconds == pytest.approx(9.99 / 980)


def test_varied_latencies_percentiles() -> None:
    # One event a second with latencies 1 ms .. 100 ms, fed in reverse order.
    times: list[EventTimes] = [
        ("x", _at(k), _at(k), _at(k) + timedelta(milliseconds=k + 1)) for k in reversed(range(100))
    ]
    latency = _row(_report(times), "x").latency
    assert latency is not None
    assert latency.count == 100
    assert latency.p50 == pytest.approx(0.0505)
    assert latency.p95 == pytest.approx(0.09505)
    assert latency.p99 == pytest.approx(0.09901)
    assert latency.max == pytest.approx(0.1)


def test_empty_window_is_a_report_with_a_zero_all_row() -> None:
    report = _report([])
    assert report.span_start is None
    assert report.span_end is None
    assert report.span_seconds == 0.0
    assert report.rows == [TypeReport("all", 0, 0, 0.0, 0.0, 0.0, 0.0, None, 0, None, None)]


def test_one_event() -> None:
    report = _report([("solo", _at(0.9), _at(1.0), _at(1.5))])
    assert [r.event_type for r in report.rows] == ["solo", "all"]
    row = _row(report, "solo")
    assert row.span_seconds == pytest.approx(0.5)
    assert (row.arrival_rate, row.processing_rate, row.throughput) == pytest.approx((2.0, 2.0, 2.0))
    assert row.tau_seconds == pytest.approx(0.5)
    assert row.latency == LatencyStats(count=1, p50=0.5, p95=0.5, p99=0.5, max=0.5)
    assert row.end_to_end is not None
    assert row.end_to_end.p50 == pytest.approx(0.6)


def test_events_in_flight_count_as_arrivals_not_completions() -> None:
    times: list[EventTimes] = [
        ("a", _at(0), _at(0), _at(1)),
        ("a", _at(1), _at(1), _at(3)),
        ("a", _at(2), _at(2), None),
    ]
    row = _row(_report(times), "a")
    assert (row.n, row.m, row.in_flight) == (3, 2, 1)
    assert row.latency is not None
    assert row.latency.count == 2
    assert row.span_seconds == pytest.approx(3.0)


def test_only_in_flight_events_have_zero_span_and_rates() -> None:
    row = _row(_report([("a", _at(5), _at(5), None)]), "a")
    assert (row.n, row.m, row.in_flight) == (1, 0, 1)
    assert (row.span_seconds, row.arrival_rate, row.throughput, row.tau_seconds) == (0.0, 0.0, 0.0, None)
    assert row.latency is None


def test_events_outside_the_window_are_excluded() -> None:
    times: list[EventTimes] = [
        ("early", _at(1), _at(1), _at(2)),  # received and stored before the window
        ("late", _at(20), _at(20), _at(21)),  # received at the window's (exclusive) end
        ("later", _at(25), _at(25), None),
        ("a", _at(10), _at(10), _at(12)),  # received at the (inclusive) start
        ("a", _at(11), _at(11), _at(14)),
    ]
    report = _report(times, start=10.0, end=20.0)
    assert [r.event_type for r in report.rows] == ["a", "all"]
    assert (_row(report, "all").n, _row(report, "all").m) == (2, 2)
    assert report.span_seconds == pytest.approx(4.0)


def test_event_received_before_window_and_stored_inside_is_a_completion_only() -> None:
    times: list[EventTimes] = [
        ("a", _at(8), _at(8), _at(12)),  # carried over from the previous window
        ("a", _at(15), _at(15), _at(16)),
    ]
    report = _report(times, start=10.0, end=20.0)
    row = _row(report, "a")
    assert (row.n, row.m, row.in_flight) == (1, 2, 0)
    assert report.span_start == _at(10)  # the system was busy from the window's start
    assert row.span_seconds == pytest.approx(6.0)
    assert row.latency is not None
    assert row.latency.max == pytest.approx(4.0)


def test_rates_add_up_across_types() -> None:
    rng = random.Random(11)
    times: list[EventTimes] = []
    for _ in range(500):
        received = _at(rng.uniform(0, 100))
        stored = None if rng.random() < 0.1 else received + timedelta(seconds=rng.expovariate(2.0))
        times.append((rng.choice("abc"), received - timedelta(seconds=0.01), received, stored))
    report = _report(times, start=10.0, end=90.0)
    *per_type, overall = report.rows
    assert [r.event_type for r in per_type] == ["a", "b", "c"]
    assert overall.event_type == "all"
    assert overall.n == sum(r.n for r in per_type) > 0
    assert overall.m == sum(r.m for r in per_type) > 0
    assert overall.in_flight == sum(r.in_flight for r in per_type)
    assert {r.span_seconds for r in report.rows} == {report.span_seconds}
    assert overall.arrival_rate == pytest.approx(sum(r.arrival_rate for r in per_type))
    assert overall.processing_rate == pytest.approx(sum(r.processing_rate for r in per_type))


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (datetime(2025, 1, 1), datetime(2025, 1, 2, tzinfo=UTC)),  # naive start
        (datetime(2025, 1, 2, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)),  # end before start
    ],
)
def test_build_report_rejects_bad_windows(start: datetime, end: datetime) -> None:
    with pytest.raises(ValueError):
        build_report([], window_start=start, window_end=end, generated_at=GENERATED, report_id="r")


# --- renderers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "—"),
        (1000, "1000"),
        (0.0, "0"),
        (0.2, "0.2"),
        (1000 / 10.19, "98.14"),
        (0.005095000000000001, "0.005095"),
        (12345.6, "12346"),
        (9.99996, "10"),
    ],
)
def test_fmt(value: float | int | None, expected: str) -> None:
    assert _fmt(value) == expected


def test_markdown_contains_the_numbers_and_definitions() -> None:
    text = to_markdown(_report(_steady_load()))
    assert text.startswith("# ")
    assert "r-1" in text
    assert "T = 10.19 s" in text
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table) == 2 + 3  # header, separator, a, b, all
    assert "τ = 1/θ (s, seed model)" in table[0]
    cells = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in table[2:]}
    assert cells["a"] == [
        "1000",
        "1000",
        "10.19",
        "98.14",
        "98.14",
        "98.14",
        "0.01019",
        "0.2 / 0.2 / 0.2",
        "0.25",
        "0",
    ]
    assert cells["all"][:7] == ["2000", "2000", "10.19", "196.3", "196.3", "196.3", "0.005095"]
    definitions = text.split("Definitions", 1)[1]
    assert 4 <= len([line for line in definitions.splitlines() if line.startswith("- ")]) <= 6
    assert "seed" in definitions
    assert "measured" in definitions


def test_markdown_of_empty_window() -> None:
    text = to_markdown(_report([]))
    assert "| all | 0 | 0 | 0 | 0 | 0 | 0 | — | — | — | 0 |" in text


def test_table_rows_are_flat_rounded_and_json_able() -> None:
    rows = to_table_rows(_report(_steady_load()))
    json.dumps(rows)
    assert [r["type"] for r in rows] == ["a", "b", "all"]
    assert rows[0]["λ (ev/s)"] == 98.14
    assert rows[0]["τ = 1/θ (s)"] == 0.01019
    assert (rows[0]["p50 (s)"], rows[0]["p99 (s)"]) == (0.2, 0.2)
    assert rows[0]["p99 occurred→stored (s)"] == 0.25
    assert rows[2]["N"] == 2000
    assert all(not isinstance(v, dict | list) for row in rows for v in row.values())


def test_json_dict_has_everything_with_iso_datetimes() -> None:
    data = json.loads(json.dumps(to_json_dict(_report(_steady_load()))))
    assert data["report_id"] == "r-1"
    assert datetime.fromisoformat(data["window_start"]) == T0
    assert datetime.fromisoformat(data["span_end"]) == _at(10.19)
    assert data["span_seconds"] == pytest.approx(10.19)
    row = data["rows"][0]
    assert row["event_type"] == "a"
    assert row["arrival_rate"] == pytest.approx(1000 / 10.19)  # unrounded
    assert row["end_to_end"]["p99"] == pytest.approx(0.25)
    assert row["latency"]["count"] == 1000


def test_rich_table_shows_the_rows() -> None:
    table = to_rich_table(_report(_steady_load()))
    assert len(table.columns) == 11
    assert table.row_count == 3
    console = Console(record=True, width=250)
    console.print(table)
    text = console.export_text()
    assert "98.14" in text
    assert "196.3" in text


STORE_KEYS = {
    "report_id",
    "generated_at",
    "event_type",
    "window_start",
    "window_end",
    "span_seconds",
    "n",
    "m",
    "arrival_rate",
    "processing_rate",
    "throughput",
    "tau_seconds",
    "p50_seconds",
    "p95_seconds",
    "p99_seconds",
    "max_seconds",
}


def test_store_rows_have_exactly_the_columns_and_naive_utc_datetimes() -> None:
    plus_two = timezone(timedelta(hours=2))
    report = build_report(
        _steady_load(),
        window_start=T0.astimezone(plus_two),
        window_end=_at(3600).astimezone(plus_two),
        generated_at=GENERATED.astimezone(plus_two),
        report_id="r-2",
    )
    assert report.window_start.utcoffset() == timedelta(0)  # normalised to UTC on the way in
    assert to_json_dict(report)["generated_at"] == "2025-01-01T02:00:00+00:00"
    rows = to_store_rows(report)
    assert len(rows) == 3
    assert all(set(row) == STORE_KEYS for row in rows)
    first = rows[0]
    assert first["window_start"] == datetime(2025, 1, 1)
    assert first["generated_at"] == datetime(2025, 1, 1, 2)
    assert first["window_start"].tzinfo is None
    assert (first["event_type"], first["n"], first["m"]) == ("a", 1000, 1000)
    assert first["p99_seconds"] == pytest.approx(0.2)
    assert first["max_seconds"] == pytest.approx(0.2)  # received→stored, not occurred→stored
    assert first["tau_seconds"] == pytest.approx(0.01019)


def test_store_rows_of_empty_window_have_none_where_absent() -> None:
    (row,) = to_store_rows(_report([]))
    assert set(row) == STORE_KEYS
    assert row["event_type"] == "all"
    assert row["tau_seconds"] is None
    assert [row[k] for k in ("p50_seconds", "p95_seconds", "p99_seconds", "max_seconds")] == [None] * 4
