"""The terminal report: within 80 columns with every name and figure whole, durations with units, a legend."""

from __future__ import annotations

import re

import pytest

from flowhook.metrics.render import DEFINITIONS, to_rich
from flowhook.metrics.report import OVERALL, STAGES, TypeTotals
from tests.metrics.render.reports import (
    REALISTIC_TYPES,
    bucket_run,
    build,
    latency_of,
    realistic_report,
    rich_text,
    sample_report,
    unstable_report,
)

WIDTH = 80


def _lines(text: str) -> list[str]:
    return text.splitlines()


def _section(text: str, title: str) -> list[str]:
    """The lines of the table titled `title` (up to the next blank line)."""
    lines = _lines(text)
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start + 1 : end]


def _row(text: str, title: str, name: str) -> list[str]:
    """The cells of the row that starts with `name` in the table titled `title` (cells are 2+ spaces apart)."""
    (line,) = [line for line in _section(text, title) if line.startswith(f"{name} ") or line.strip() == name]
    return re.split(r"\s{2,}", line.strip())


@pytest.fixture(scope="module")
def realistic() -> str:
    return rich_text(realistic_report(), width=WIDTH)


def test_every_line_fits_80_columns(realistic: str) -> None:
    assert max(len(line) for line in _lines(realistic)) <= WIDTH
    assert "…" not in realistic  # nothing cut to fit


def test_type_names_and_stages_are_whole(realistic: str) -> None:
    for title in ("Events over T", "Rates", "Capacity and latency", "Backlog and Little's law", "Forecast"):
        names = [line.split()[0] for line in _section(realistic, title) if line and line[0].isalpha()]
        assert set(REALISTIC_TYPES) <= set(names), title
    stages = _section(realistic, "Latency per stage")
    for name in (*REALISTIC_TYPES, OVERALL):
        at = stages.index(next(line for line in stages if line.rstrip() == name))
        assert [line.split()[0] for line in stages[at + 1 : at + 7]] == list(STAGES.values())
    # The two stages that both start at `received` read differently.
    assert realistic.count("  received→emitted ") == realistic.count("  received→stored ") == 4


def test_no_figure_is_a_row_of_zeros(realistic: str) -> None:
    assert not re.search(r"0\.0000", realistic)
    # ρ of the ticks and the data updates, λ of the ticks: small, but with their digits.
    assert _row(realistic, "Capacity and latency", "scheduled_tick")[1:3] == ["30,000", "1.11e-7"]
    assert _row(realistic, "Capacity and latency", "data_update")[1:3] == ["5,556", "2.5e-7"]
    assert _row(realistic, "Rates", "scheduled_tick")[1] == "0.00333"


def test_figures_by_hand(realistic: str) -> None:
    # N, M, failed, in flight, backlog at start and at end
    assert _row(realistic, "Events over T = 3,600 s", "user_request") == [
        "user_request", "85,320", "85,310", "3", "10", "0", "10"
    ]  # fmt: skip
    # λ = 85,320/3,600, peak λ = 1,479/60, μ, θ, τ = 1/θ
    assert _row(realistic, "Rates", "user_request") == ["user_request", "23.7", "24.6", "23.7", "23.7", "42.2 ms"]
    assert _row(realistic, "Rates", "scheduled_tick")[-1] == "5 min"  # τ = 3,600/12 s
    # capacity 85,310/3.08, ρ = λ/capacity, and the received→stored percentiles with their units
    assert _row(realistic, "Capacity and latency", "user_request") == [
        "user_request", "27,698", "8.56e-4", "436 ms", "828 ms", "1.05 s", "1.31 s"
    ]  # fmt: skip
    handled = next(line for line in _section(realistic, "Latency per stage") if "started→stored" in line)
    assert re.split(r"\s{2,}", handled.strip())[2:] == ["39.7 µs", "36.1 µs", "68.6 µs", "86.6 µs", "108 µs"]
    assert _row(realistic, "Backlog and Little's law", "user_request")[1:] == [
        "10.3",
        "10.3",
        "0.0%",
        "100.0%",
        "holds",
    ]
    assert _row(realistic, "Forecast", "scheduled_tick")[1:] == ["30,000", "7.2 s", "7.2 s", "1"]


def test_the_window_lines_have_no_microseconds(realistic: str) -> None:
    head = _lines(realistic)[:3]
    assert head == [
        "flowhook report 6f1c2a9e-3b1d-4c8e-9a57-0d2b7e4f9c31",
        "window 2025-03-14 09:26:53 → 10:26:53 UTC",
        "T = 3,600 s in buckets of 60 s; generated 10:26:54 UTC",
    ]


def test_a_window_across_midnight_dates_its_end() -> None:
    head = _lines(rich_text(realistic_report(hours=16), width=WIDTH))[1:3]
    assert head == [
        "window 2025-03-14 09:26:53 → 2025-03-15 01:26:53 UTC",
        "T = 57,600 s in buckets of 60 s; generated 01:26:54 UTC",
    ]


def test_the_legend_glosses_every_term_of_the_markdown(realistic: str) -> None:
    lines = _lines(realistic)
    legend = lines[next(i for i, line in enumerate(lines) if line.strip() == "Legend") :]
    flat = " ".join(" ".join(legend).split())
    for definition in DEFINITIONS:
        assert f"{definition.term} {definition.gloss}" in flat
    assert "units events/s for rates; µs, ms, s, min, h or d for durations" in flat


def test_the_last_buckets_only_and_none_with_0(realistic: str) -> None:
    assert _lines(realistic)[-1].strip().startswith("units")
    rows = _section(realistic, "Per 60 s bucket, all types: the last 30 of 60")
    assert [line.split()[0] for line in rows[3:]][:1] == ["09:56:53"] and len(rows) == 3 + 30
    text = rich_text(realistic_report(), width=WIDTH, buckets=0)
    assert "bucket, all types" not in text
    assert not re.search(r"^\d\d:\d\d:\d\d ", text, re.MULTILINE)
    assert len(_lines(text)) == len(_lines(realistic)) - (len(rows) + 2)  # the table, its title and a blank line
    with pytest.raises(ValueError, match="0 or more"):
        to_rich(realistic_report(), buckets=-1)


def test_fewer_buckets_than_asked_are_all_shown() -> None:
    count = 130
    report = build([], bucket_run(OVERALL, [1] * count, 1), seconds=count, bucket_seconds=1)
    text = rich_text(report)  # 30 by default
    assert "the last 30 of 130" in text
    assert "00:02:09" in text and "00:01:40" in text and "00:01:39" not in text
    text = rich_text(report, buckets=5)
    assert "00:02:05" in text and "00:02:04" not in text
    text = rich_text(report, buckets=500)
    assert "Per 1 s bucket, all types" in text and "the last" not in text and "00:00:00" in text


def test_a_name_longer_than_the_tables_allow_wraps_and_is_never_cut() -> None:
    name = "an_event_type_name_so_long_that_no_table_of_the_report_can_hold_it_on_one_line"
    latency = latency_of(10, 1.0, 1.0, 2.0, 3.0, 4.0)
    totals = [
        TypeTotals(name, arrivals=10, completions=10, busy_seconds=1.0, stages={"latency": latency}),
        TypeTotals(OVERALL, arrivals=10, completions=10, busy_seconds=1.0, stages={"latency": latency}),
    ]
    text = rich_text(build(totals, [], seconds=10, bucket_seconds=10), width=WIDTH)
    assert max(len(line) for line in _lines(text)) <= WIDTH
    assert "…" not in text
    assert name in "".join(line.split("  ")[0].strip() for line in _lines(text))


def test_the_sample_tables_and_figures() -> None:
    text = rich_text(sample_report())
    for title in (
        "Events over T = 60 s",
        "Rates (events/s) and τ",
        "Capacity and latency received→stored",
        "Latency per stage, measured",
        "Backlog and Little's law",
        "Forecast, M/M/c (target p99 ≤ 10 s)",
        "Per 20 s bucket, all types",
    ):
        assert title in text
    # ρ = 0.5/6, λ = 1/3 and 5/6, ρ of all = (5/6)/11, τ = 60/44 s, Little's gap, d and p99 of the forecast
    for figure in ("0.0833", "0.333", "0.833", "0.0758", "1.36 s", "50.0%", "674 ms", "1.51 s"):
        assert figure in text, figure


def test_an_infinite_forecast() -> None:
    (line,) = [line for line in _lines(rich_text(unstable_report())) if line.startswith("hot") and "∞" in line]
    assert re.split(r"\s{2,}", line.strip()) == ["hot", "50", "0 s", "∞", "2"]
