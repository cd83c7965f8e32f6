"""Pure tests of the report's renderers: Markdown, table rows, JSON, the terminal and the store's rows."""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from rich.console import Console

from flowhook.metrics.render import (
    DEFINITIONS,
    MAX_BUCKET_LINES,
    _fmt,
    to_json_dict,
    to_markdown,
    to_rich,
    to_store_rows,
    to_table_rows,
)
from flowhook.metrics.report import OVERALL, BucketTotals, LatencyStats, Report, TypeTotals, Window, build_report
from flowhook.store.duckdb_store import REPORT_TABLES
from flowhook.watchdog import check_heartbeat

T0 = datetime(2025, 1, 1, tzinfo=UTC)
LN2 = math.log(2)
LN100 = math.log(100)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _stats(count: int, mean: float, p50: float, p95: float, p99: float, top: float) -> LatencyStats:
    return LatencyStats(count=count, mean=mean, p50=p50, p95=p95, p99=p99, max=top)


def _buckets(event_type: str, arrivals: list[int], seconds: float) -> list[BucketTotals]:
    """Consecutive buckets from T0, one per entry of `arrivals`, each storing one event fewer than arrived."""
    return [
        BucketTotals(
            event_type,
            _at(k * seconds),
            seconds,
            arrivals=n,
            completions=max(0, n - 1),
            backlog=k,
            latency=_stats(max(0, n - 1), 0.5, 0.4, 0.9, 1.1, 1.2) if n > 1 else None,
        )
        for k, n in enumerate(arrivals)
    ]


def _build(
    totals: list[TypeTotals],
    buckets: list[BucketTotals],
    *,
    seconds: float,
    bucket_seconds: float,
    target: float = 10.0,
) -> Report:
    return build_report(
        totals,
        buckets,
        window=Window(T0, _at(seconds), bucket_seconds),
        generated_at=_at(seconds + 5),
        report_id="r-1",
        target_p99_seconds=target,
    )


def _sample() -> Report:
    """Two types over T = 60 s in 20 s buckets, with every warning the report can give.

    order.created: λ = 30/60 = 0.5, μ = 24/60 = 0.4, capacity = 24/4 = 6, ρ = 0.5/6; L = 30/60 = 0.5 = λW (W = 1).
    payment.settled: λ = μ = 20/60; no worker time; L = 40/60 against λW = 1/3: gap 50%.
    all: λ = 50/60, μ = 44/60, capacity 44/4 = 11; L = 70/60 against λW = 50/60: gap 20/70; 3 skewed events.
    """
    totals = [
        TypeTotals(
            "payment.settled",
            arrivals=20,
            completions=20,
            backlog_seconds=40.0,
            sojourn_seconds=20.0,
            stages={"sent": None, "latency": _stats(20, 1.0, 1.0, 1.0, 1.0, 1.0)},
        ),
        TypeTotals(
            "order.created",
            arrivals=30,
            completions=24,
            failed=1,
            in_flight=6,
            backlog_start=0,
            backlog_end=6,
            backlog_seconds=30.0,
            sojourn_seconds=30.0,
            busy_seconds=4.0,
            steps=3,
            workers=1,
            stages={
                "sent": None,
                "batched": _stats(24, 0.3, 0.25, 0.5, 0.6, 0.7),
                "latency": _stats(24, 0.9, 0.8, 1.5, 1.9, 2.0),
            },
        ),
        TypeTotals(
            OVERALL,
            arrivals=50,
            completions=44,
            failed=1,
            in_flight=6,
            backlog_end=6,
            backlog_seconds=70.0,
            sojourn_seconds=50.0,
            busy_seconds=4.0,
            steps=3,
            workers=1,
            skewed=3,
            max_skew_seconds=1.25,
            stages={"latency": _stats(44, 0.95, 0.9, 1.5, 1.9, 2.0)},
        ),
    ]
    buckets = [
        *_buckets(OVERALL, [15, 19, 16], 20),
        *_buckets("payment.settled", [5, 5, 10], 20),
        *_buckets("order.created", [10, 14, 6], 20),
    ]
    return _build(totals, buckets, seconds=60, bucket_seconds=20)


def _unstable() -> Report:
    """λ = 600/10 s = 60/s against a capacity of 400/8 = 50/s: the forecast p99 is infinite."""
    latency = _stats(400, 1.0, 1.0, 2.0, 3.0, 4.0)
    totals = [
        TypeTotals("hot", arrivals=600, completions=400, in_flight=200, busy_seconds=8.0, stages={"latency": latency}),
        TypeTotals(
            OVERALL, arrivals=600, completions=400, in_flight=200, busy_seconds=8.0, stages={"latency": latency}
        ),
    ]
    return _build(totals, [], seconds=10, bucket_seconds=10)


def _empty() -> Report:
    return _build([], [], seconds=60, bucket_seconds=60)


def _one_event() -> Report:
    """One event received at 10 s and stored 0.2 s later, 0.05 s of it worker time, in a 60 s window."""
    latency = _stats(1, 0.2, 0.2, 0.2, 0.2, 0.2)
    totals = [
        TypeTotals(
            name,
            arrivals=1,
            completions=1,
            backlog_seconds=0.2,
            sojourn_seconds=0.2,
            busy_seconds=0.05,
            steps=1,
            workers=1,
            stages={"latency": latency},
        )
        for name in ("solo", OVERALL)
    ]
    buckets = [
        BucketTotals(name, T0, 60.0, arrivals=1, completions=1, backlog=0, latency=latency)
        for name in ("solo", OVERALL)
    ]
    return _build(totals, buckets, seconds=60, bucket_seconds=60)


def _table(markdown: str, heading: str) -> list[list[str]]:
    """The cells of the body rows of the first table after `heading`."""
    section = markdown.split(heading, 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.split("|")[1:-1]] for line in lines[2:]]


def _rich_text(report: Report, **kwargs: Any) -> str:
    console = Console(record=True, width=250)
    console.print(to_rich(report, **kwargs))
    return console.export_text()


# --- _fmt ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "—"),
        (True, "yes"),
        (False, "no"),
        (0, "0"),
        (1000, "1,000"),
        (1234567, "1,234,567"),
        (0.0, "0"),
        (0.2, "0.2"),
        (2.5, "2.5"),
        (6.0, "6"),
        (1 / 3, "0.3333"),
        (1000 / 10.19, "98.14"),
        (0.005095000000000001, "0.005095"),
        (12345.6, "12,346"),
        (999.96, "1,000"),
        (9.99996, "10"),
        (-0.5, "-0.5"),
        (math.inf, "∞"),
    ],
)
def test_fmt(value: float | int | None, expected: str) -> None:
    assert _fmt(value) == expected


# --- Markdown ------------------------------------------------------------------------------------------


def test_markdown_has_every_section_in_order() -> None:
    text = to_markdown(_sample())
    assert text.startswith("# flowhook report `r-1`\n")
    assert "T = 60 s, buckets of 20 s" in text
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == [
        "## Rates",
        "## Capacity and latency (received→stored)",
        "## Latency per stage (seconds, measured)",
        "## Backlog and Little's law",
        "## Capacity forecast (target p99 ≤ 10 s)",
        "## Per 20 s bucket (all types)",
        "## Definitions",
    ]


def test_markdown_rates_table_by_hand() -> None:
    text = to_markdown(_sample())
    rows = {cells[0]: cells[1:] for cells in _table(text, "## Rates")}
    assert list(rows) == ["order.created", "payment.settled", "all"]
    # N, M, failed, in flight, λ, peak λ, μ, θ
    assert rows["order.created"] == ["30", "24", "1", "6", "0.5", "0.7", "0.4", "0.4"]
    assert rows["payment.settled"] == ["20", "20", "0", "0", "0.3333", "0.5", "0.3333", "0.3333"]
    # all: λ = 50/60, peak 19/20, μ = 44/60.
    assert rows["all"] == ["50", "44", "1", "6", "0.8333", "0.95", "0.7333", "0.7333"]


def test_markdown_capacity_and_latency_table_by_hand() -> None:
    text = to_markdown(_sample())
    header = next(line for line in text.splitlines() if line.startswith("| type | capacity"))
    assert "τ = 1/θ (s, seed model)" in header
    rows = {cells[0]: cells[1:] for cells in _table(text, "## Capacity and latency")}
    # capacity, ρ, τ, p50, p95, p99, max
    assert rows["order.created"] == ["6", "0.08333", "2.5", "0.8", "1.5", "1.9", "2"]
    assert rows["payment.settled"] == ["—", "—", "3", "1", "1", "1", "1"]
    # all: capacity 11, ρ = (50/60)/11, τ = 60/44.
    assert rows["all"] == ["11", "0.07576", "1.364", "0.9", "1.5", "1.9", "2"]


def test_markdown_stage_table_lists_only_stages_with_figures() -> None:
    rows = _table(to_markdown(_sample()), "## Latency per stage")
    assert rows == [
        ["order.created", "received→emitted", "24", "0.3", "0.25", "0.5", "0.6", "0.7"],
        ["order.created", "received→stored", "24", "0.9", "0.8", "1.5", "1.9", "2"],
        ["payment.settled", "received→stored", "20", "1", "1", "1", "1", "1"],
        ["all", "received→stored", "44", "0.95", "0.9", "1.5", "1.9", "2"],
    ]


def test_markdown_little_table_by_hand() -> None:
    rows = {cells[0]: cells[1:] for cells in _table(to_markdown(_sample()), "## Backlog and Little's law")}
    # backlog at start, at end, L, W, λW, gap, steady
    assert rows["order.created"] == ["0", "6", "0.5", "1", "0.5", "0.0%", "yes"]
    assert rows["payment.settled"] == ["0", "0", "0.6667", "1", "0.3333", "50.0%", "NO"]
    assert rows["all"] == ["0", "6", "1.167", "1", "0.8333", "28.6%", "NO"]


def test_markdown_forecast_table_by_hand() -> None:
    text = to_markdown(_sample())
    rows = _table(text, "## Capacity forecast")
    # Only order.created has worker time. μ = 6, λ = 0.5: M/M/1 median ln2/5.5 = 0.1260, so
    # d = 0.8 − 0.1260 = 0.6740 and p99 = d + ln(100)/5.5 = 0.6740 + 0.8373 = 1.511.
    assert rows == [["order.created", "6", "0.08333", "6", "0.674", "1.511", "1"]]
    assert "Model: M/M/c queue" in text


def test_markdown_forecast_of_an_unstable_queue_is_infinite() -> None:
    rows = _table(to_markdown(_unstable()), "## Capacity forecast")
    # ρ = 60/50; d = 0 when unstable; two workers make it stable (and fast: ~0.1 s p99 against 10 s).
    assert rows == [["hot", "50", "1.2", "50", "0", "∞", "2"]]


def test_markdown_forecast_says_when_nobody_can_meet_the_target() -> None:
    latency = _stats(10, 5.0, 5.0, 5.0, 5.0, 5.0)  # a 5 s fixed delay against a 1 s target
    totals = [TypeTotals("slow", arrivals=10, completions=10, busy_seconds=1.0, stages={"latency": latency})]
    rows = _table(to_markdown(_build(totals, [], seconds=10, bucket_seconds=10, target=1.0)), "## Capacity forecast")
    assert rows[0][0] == "slow"
    assert rows[0][-1] == "none can"


def test_markdown_buckets_are_the_all_types_ones() -> None:
    rows = _table(to_markdown(_sample()), "## Per 20 s bucket")
    # start, arrivals, stored, λ, μ, backlog at end, p50, p99
    assert rows == [
        ["00:00:00", "15", "14", "0.75", "0.7", "0", "0.4", "1.1"],
        ["00:00:20", "19", "18", "0.95", "0.9", "1", "0.4", "1.1"],
        ["00:00:40", "16", "15", "0.8", "0.75", "2", "0.4", "1.1"],
    ]


def test_markdown_chart_only_with_a_url() -> None:
    assert "![" not in to_markdown(_sample())
    text = to_markdown(_sample(), chart_url="http://127.0.0.1:8000/reports/r-1.png")
    (line,) = [line for line in text.splitlines() if line.startswith("![")]
    assert line.endswith("(http://127.0.0.1:8000/reports/r-1.png)")
    assert text.index(line) > text.index("## Per 20 s bucket")


def test_markdown_defines_every_term() -> None:
    text = to_markdown(_sample())
    definitions = text.split("## Definitions", 1)[1]
    terms = [term for term, _ in DEFINITIONS]
    assert {"λ", "μ", "θ", "τ", "ρ", "capacity", "Little's law", "forecast"} <= set(terms)
    for term, meaning in DEFINITIONS:
        assert f"- **{term}**: {meaning}" in definitions
    assert "seed" in dict(DEFINITIONS)["τ"]


def test_markdown_cuts_long_bucket_lists_with_a_note() -> None:
    count = MAX_BUCKET_LINES + 10
    report = _build(
        [TypeTotals(OVERALL, arrivals=count)],
        [*_buckets(OVERALL, [1] * count, 1), *_buckets("a", [1] * count, 1)],
        seconds=count,
        bucket_seconds=1,
    )
    text = to_markdown(report)
    rows = _table(text, "## Per 1 s bucket")
    assert len(rows) == MAX_BUCKET_LINES
    assert rows[0][0] == "00:00:10"  # the first 10 are cut
    assert rows[-1][0] == "00:02:09"
    assert f"The last {MAX_BUCKET_LINES} of {count} buckets" in text


def test_markdown_lists_every_bucket_up_to_the_limit() -> None:
    report = _build([], _buckets(OVERALL, [1] * MAX_BUCKET_LINES, 1), seconds=MAX_BUCKET_LINES, bucket_seconds=1)
    text = to_markdown(report)
    assert len(_table(text, "## Per 1 s bucket")) == MAX_BUCKET_LINES
    assert "The last" not in text


# --- warnings, in every renderer -----------------------------------------------------------------------


def test_warnings_in_markdown_json_and_rich() -> None:
    report = _sample()
    assert report.clock_skew is not None
    markdown = to_markdown(report)
    warnings = to_json_dict(report)["warnings"]
    rich_text = _rich_text(report)
    assert len(warnings) == 3
    skew, unsteady, in_flight = warnings
    assert skew.startswith("Clock skew: 3 events")
    assert "up to 1.25 s" in skew
    assert unsteady.startswith("Not in steady state: payment.settled, all ")
    assert in_flight.startswith("6 events received in the window were not stored")
    for note in warnings:
        assert f"> **{note}**" in markdown
    flat = " ".join(rich_text.split())  # the terminal wraps long lines
    assert "Clock skew: 3 events" in flat
    assert "Not in steady state: payment.settled, all" in flat
    assert "6 events received in the window were not stored" in flat
    # The warnings come before the tables.
    assert markdown.index("Clock skew") < markdown.index("## Rates")


def test_no_warnings_when_all_is_well() -> None:
    report = _one_event()
    assert report.clock_skew is None
    assert to_json_dict(report)["warnings"] == []
    markdown = to_markdown(report)
    assert "Clock skew" not in markdown
    assert "Not in steady state" not in markdown
    assert "in flight)" not in markdown


# --- table rows ----------------------------------------------------------------------------------------


def test_table_rows_are_flat_rounded_and_json_able() -> None:
    report = _sample()
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


# --- JSON ----------------------------------------------------------------------------------------------


def test_json_dict_is_unrounded_with_iso_datetimes() -> None:
    data = json.loads(json.dumps(to_json_dict(_sample()), allow_nan=False))
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
    assert order["little"]["steady"] is True
    assert payment["little"]["steady"] is False
    assert payment["little"]["gap"] == pytest.approx(0.5)
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
    assert data["definitions"] == {term: meaning for term, meaning in DEFINITIONS}


def test_json_dict_of_an_unstable_forecast_has_null_for_infinity() -> None:
    json.dumps(to_table_rows(_unstable()), allow_nan=False)
    text = json.dumps(to_json_dict(_unstable()), allow_nan=False)
    fc = json.loads(text)["rows"][0]["forecast"]
    assert fc["latency_quantile"] is None
    assert fc["utilisation"] == pytest.approx(1.2)
    assert fc["fixed_delay"] == 0.0


def test_json_dict_normalises_datetimes_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    report = build_report(
        [],
        [],
        window=Window(T0.astimezone(plus_two), _at(60).astimezone(plus_two)),
        generated_at=_at(65).astimezone(plus_two),
        report_id="r-2",
        target_p99_seconds=10.0,
    )
    data = to_json_dict(report)
    assert data["window_start"] == "2025-01-01T00:00:00+00:00"
    assert data["generated_at"] == "2025-01-01T00:01:05+00:00"


# --- rich ----------------------------------------------------------------------------------------------


def test_rich_shows_the_tables_and_figures() -> None:
    text = _rich_text(_sample())
    for title in (
        "Rates over T = 60 s",
        "Capacity and latency (received→stored)",
        "Latency per stage",
        "Backlog and Little's law",
        "Capacity forecast, M/M/c",
    ):
        assert title in text
    assert "Per 20 s bucket, all types" in text
    for name in ("order.created", "payment.settled", "all"):
        assert name in text
    for figure in ("0.08333", "0.3333", "0.8333", "0.07576", "1.364", "50.0%", "0.674", "1.511"):
        assert figure in text, figure


def test_rich_shows_only_the_last_buckets() -> None:
    count = 130
    report = _build([], _buckets(OVERALL, [1] * count, 1), seconds=count, bucket_seconds=1)
    text = _rich_text(report)  # 30 by default
    assert "00:02:09" in text
    assert "00:01:40" in text
    assert "00:01:39" not in text
    text = _rich_text(report, buckets=5)
    assert "00:02:05" in text
    assert "00:02:04" not in text


def test_rich_shows_an_infinite_forecast() -> None:
    text = _rich_text(_unstable())
    (line,) = [line for line in text.splitlines() if "hot" in line and "∞" in line]
    assert "1.2" in line


# --- store rows ----------------------------------------------------------------------------------------


def _columns(table: str) -> set[str]:
    return {name for name, _ in REPORT_TABLES[table]}


@pytest.mark.parametrize("report", [_sample(), _unstable(), _empty(), _one_event()], ids=lambda r: r.rows[0].event_type)
def test_store_rows_have_exactly_the_tables_columns(report: Report) -> None:
    rows = to_store_rows(report)
    assert set(rows) == set(REPORT_TABLES)
    for table, table_rows in rows.items():
        for row in table_rows:
            assert set(row) == _columns(table), table


def test_store_rows_by_hand() -> None:
    rows = to_store_rows(_sample(), chart_path="reports/r-1.png")
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
    assert order["steady"] is True
    assert order["saturation_rate"] == pytest.approx(6.0)
    assert order["forecast_p99_seconds"] == pytest.approx(0.8 - LN2 / 5.5 + LN100 / 5.5, rel=1e-6)
    assert order["workers_needed"] == 1
    assert order["chart_path"] == "reports/r-1.png"
    assert order["span_seconds"] == 60.0
    assert order["target_p99_seconds"] == 10.0
    assert payment["capacity"] is None
    assert payment["steady"] is False
    assert payment["saturation_rate"] is None
    assert (overall["skewed"], overall["max_skew_seconds"]) == (3, 1.25)
    assert overall["little_gap"] == pytest.approx(20 / 70)
    assert overall["mean_backlog"] == pytest.approx(70 / 60)
    assert overall["little_predicted"] == pytest.approx(50 / 60)
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
        ("order.created", _at(0)),
        ("order.created", _at(20)),
        ("order.created", _at(40)),
    ]
    assert buckets[1]["arrivals"] == 14
    assert buckets[1]["arrival_rate"] == pytest.approx(0.7)
    assert buckets[1]["processing_rate"] == pytest.approx(13 / 20)
    assert buckets[0]["p50_seconds"] == 0.4


def test_store_rows_datetimes_are_aware_utc() -> None:
    rows = to_store_rows(_sample())
    values = [
        *(r[k] for r in rows["reports"] for k in ("generated_at", "window_start", "window_end")),
        *(b["bucket_start"] for b in rows["report_buckets"]),
    ]
    assert values
    for value in values:
        assert isinstance(value, datetime)
        assert value.utcoffset() == timedelta(0)


def test_store_rows_of_an_unstable_forecast_have_no_infinity() -> None:
    (hot, overall) = to_store_rows(_unstable())["reports"]
    assert hot["forecast_p99_seconds"] is None
    assert hot["utilisation"] == pytest.approx(60 / 50)
    assert hot["workers_needed"] == 2
    assert all(not (isinstance(v, float) and not math.isfinite(v)) for v in hot.values())
    assert overall["forecast_p99_seconds"] is None


# --- edge cases in every renderer ----------------------------------------------------------------------


def test_empty_window_renders_everywhere() -> None:
    report = _empty()
    markdown = to_markdown(report)
    assert _table(markdown, "## Rates") == [["all", "0", "0", "0", "0", "0", "0", "0", "0"]]
    assert _table(markdown, "## Capacity and latency") == [["all", "—", "—", "—", "—", "—", "—", "—"]]
    assert _table(markdown, "## Latency per stage") == []
    assert _table(markdown, "## Backlog and Little's law") == [["all", "0", "0", "—", "—", "—", "—", "—"]]
    assert "nothing to forecast from" in markdown
    assert _table(markdown, "## Per 60 s bucket") == []
    (row,) = to_table_rows(report)
    assert (row["type"], row["N"], row["τ = 1/θ (s, seed model)"], row["p50 (s)"]) == ("all", 0, None, None)
    data = json.loads(json.dumps(to_json_dict(report), allow_nan=False))
    assert [r["event_type"] for r in data["rows"]] == ["all"]
    assert data["buckets"] == []
    assert data["warnings"] == []
    assert "all" in _rich_text(report)
    store = to_store_rows(report)
    assert [r["event_type"] for r in store["reports"]] == ["all"]
    assert store["reports"][0]["tau_seconds"] is None
    assert store["reports"][0]["steady"] is None
    assert store["report_stages"] == []
    assert store["report_buckets"] == []


def test_one_event_renders_everywhere() -> None:
    report = _one_event()
    markdown = to_markdown(report)
    rows = {cells[0]: cells[1:] for cells in _table(markdown, "## Rates")}
    # λ = peak λ = μ = θ = 1/60
    assert rows["solo"] == ["1", "1", "0", "0", "0.01667", "0.01667", "0.01667", "0.01667"]
    capacity = {cells[0]: cells[1:] for cells in _table(markdown, "## Capacity and latency")}
    # capacity = 1/0.05 = 20, ρ = (1/60)/20, τ = 60 s, every percentile 0.2 s.
    assert capacity["solo"] == ["20", "0.0008333", "60", "0.2", "0.2", "0.2", "0.2"]
    little = {cells[0]: cells[1:] for cells in _table(markdown, "## Backlog and Little's law")}
    assert little["solo"][-2:] == ["0.0%", "yes"]  # L = 0.2/60 = λW = (1/60) × 0.2
    assert [r["type"] for r in to_table_rows(report)] == ["solo", "all"]
    json.dumps(to_json_dict(report), allow_nan=False)
    text = _rich_text(report)
    assert "solo" in text
    assert "0.0008333" in text
    store = to_store_rows(report)
    assert [(s["event_type"], s["stage"]) for s in store["report_stages"]] == [("solo", "latency"), ("all", "latency")]
    assert len(store["report_buckets"]) == 2


# --- the trigger path's heartbeat ----------------------------------------------------------------------


def _with_heartbeat(stored_ago: float | None) -> Report:
    report = _one_event()
    last = None if stored_ago is None else (_at(60 - stored_ago - 2), _at(60 - stored_ago))
    beat = check_heartbeat(last, now=_at(60), max_age_seconds=660)
    return dataclasses.replace(report, heartbeat=beat)


def test_an_unhealthy_trigger_path_is_the_first_warning_everywhere() -> None:
    report = _with_heartbeat(14 * 60)
    note = (
        "Trigger path UNHEALTHY — no heartbeat stored for 14 min (max 11 min): "
        "a trigger, the worker or the Prefect server may be down."
    )
    data = to_json_dict(report)
    assert data["warnings"] == [note]
    assert data["heartbeat"]["status"] == "unhealthy" and data["heartbeat"]["age_seconds"] == 840
    json.dumps(data, allow_nan=False)
    markdown = to_markdown(report)
    assert f"> **{note}**" in markdown and markdown.index("Trigger path") < markdown.index("## Rates")
    assert note in " ".join(_rich_text(report).split())


@pytest.mark.parametrize("stored_ago", [30.0, None])
def test_a_healthy_or_unknown_trigger_path_adds_no_warning(stored_ago: float | None) -> None:
    report = _with_heartbeat(stored_ago)
    data = to_json_dict(report)
    assert data["warnings"] == []
    assert data["heartbeat"]["status"] == ("healthy" if stored_ago else "unknown")
    assert "Trigger path" not in to_markdown(report) and "Trigger path" not in _rich_text(report)


def test_a_report_without_a_heartbeat_check_says_null() -> None:
    assert _one_event().heartbeat is None
    assert to_json_dict(_one_event())["heartbeat"] is None
