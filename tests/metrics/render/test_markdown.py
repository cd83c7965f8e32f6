"""The Markdown artifact: every table, checked cell by cell against figures worked out by hand, and the definitions."""

from __future__ import annotations

from flowhook.metrics.render import DEFINITIONS, MAX_BUCKET_LINES, to_markdown
from flowhook.metrics.report import OVERALL, TypeTotals
from tests.metrics.render.reports import (
    bucket_run,
    build,
    latency_of,
    md_table,
    sample_report,
    unstable_report,
)


def test_markdown_has_every_section_in_order() -> None:
    text = to_markdown(sample_report())
    assert text.startswith("# flowhook report `r-1`\n")
    assert "T = 60 s, buckets of 20 s" in text
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == [
        "## Rates",
        "## Capacity and latency (received→stored)",
        "## Latency per stage (seconds, measured)",
        "## Backlog and Little's law",
        "## Capacity forecast (target p99 ≤ 10 s)",
        "## Capacity per stage (events/s)",
        "## Deliveries offered and answered",
        "## Per 20 s bucket (all types)",
        "## Definitions",
    ]


def test_markdown_rates_table_by_hand() -> None:
    text = to_markdown(sample_report())
    rows = {cells[0]: cells[1:] for cells in md_table(text, "## Rates")}
    assert list(rows) == ["order.created", "payment.settled", "all"]
    # N, M, failed, in flight, λ, peak λ, μ, θ
    assert rows["order.created"] == ["30", "24", "1", "6", "0.5", "0.7", "0.4", "0.4"]
    assert rows["payment.settled"] == ["20", "20", "0", "0", "0.3333", "0.5", "0.3333", "0.3333"]
    # all: λ = 50/60, peak 19/20, μ = 44/60.
    assert rows["all"] == ["50", "44", "1", "6", "0.8333", "0.95", "0.7333", "0.7333"]


def test_markdown_capacity_and_latency_table_by_hand() -> None:
    text = to_markdown(sample_report())
    header = next(line for line in text.splitlines() if line.startswith("| type | capacity"))
    assert "τ = 1/θ (s, seed model)" in header
    rows = {cells[0]: cells[1:] for cells in md_table(text, "## Capacity and latency")}
    # capacity, ρ, τ, p50, p95, p99, max
    assert rows["order.created"] == ["6", "0.08333", "2.5", "0.8", "1.5", "1.9", "2"]
    assert rows["payment.settled"] == ["—", "—", "3", "1", "1", "1", "1"]
    # all: capacity 11, ρ = (50/60)/11, τ = 60/44.
    assert rows["all"] == ["11", "0.07576", "1.364", "0.9", "1.5", "1.9", "2"]


def test_markdown_stage_table_lists_only_stages_with_figures() -> None:
    rows = md_table(to_markdown(sample_report()), "## Latency per stage")
    assert rows == [
        ["order.created", "received→emitted", "24", "0.3", "0.25", "0.5", "0.6", "0.7"],
        ["order.created", "received→stored", "24", "0.9", "0.8", "1.5", "1.9", "2"],
        ["payment.settled", "received→stored", "20", "1", "1", "1", "1", "1"],
        ["all", "received→stored", "44", "0.95", "0.9", "1.5", "1.9", "2"],
    ]


def test_markdown_little_table_by_hand() -> None:
    rows = {cells[0]: cells[1:] for cells in md_table(to_markdown(sample_report()), "## Backlog and Little's law")}
    # backlog at start, at end, sampled L, λW from timestamps, gap, share watched, check
    assert rows["order.created"] == ["0", "6", "0.5", "0.5", "0.0%", "100.0%", "holds"]
    assert rows["payment.settled"] == ["0", "0", "0.3333", "0.6667", "50.0%", "100.0%", "FAILS"]
    assert rows["all"] == ["0", "6", "0.8333", "1.167", "28.6%", "100.0%", "FAILS"]


def test_markdown_forecast_table_by_hand() -> None:
    text = to_markdown(sample_report())
    rows = md_table(text, "## Capacity forecast")
    # Only order.created has worker time. μ = 6, λ = 0.5: M/M/1 median ln2/5.5 = 0.1260, so
    # d = 0.8 − 0.1260 = 0.6740 and p99 = d + ln(100)/5.5 = 0.6740 + 0.8373 = 1.511.
    assert rows == [["order.created", "6", "0.08333", "6", "0.674", "1.511", "1"]]
    assert "Model: M/M/c queue" in text


def test_markdown_forecast_of_an_unstable_queue_is_infinite() -> None:
    rows = md_table(to_markdown(unstable_report()), "## Capacity forecast")
    # ρ = 60/50; d = 0 when unstable; two workers make it stable (and fast: ~0.1 s p99 against 10 s).
    assert rows == [["hot", "50", "1.2", "50", "0", "∞", "2"]]


def test_markdown_forecast_says_when_nobody_can_meet_the_target() -> None:
    latency = latency_of(10, 5.0, 5.0, 5.0, 5.0, 5.0)  # a 5 s fixed delay against a 1 s target
    totals = [TypeTotals("slow", arrivals=10, completions=10, busy_seconds=1.0, stages={"latency": latency})]
    rows = md_table(to_markdown(build(totals, [], seconds=10, bucket_seconds=10, target=1.0)), "## Capacity forecast")
    assert rows[0][0] == "slow"
    assert rows[0][-1] == "none can"


def test_markdown_buckets_are_the_all_types_ones() -> None:
    rows = md_table(to_markdown(sample_report()), "## Per 20 s bucket")
    # start, arrivals, stored, λ, μ, backlog at end, deliveries offered, refused (no counts here), p50, p99
    assert rows == [
        ["00:00:00", "15", "14", "0.75", "0.7", "0", "0", "0", "0.4", "1.1"],
        ["00:00:20", "19", "18", "0.95", "0.9", "1", "0", "0", "0.4", "1.1"],
        ["00:00:40", "16", "15", "0.8", "0.75", "2", "0", "0", "0.4", "1.1"],
    ]


def test_markdown_chart_only_with_a_url() -> None:
    assert "![" not in to_markdown(sample_report())
    text = to_markdown(sample_report(), chart_url="http://127.0.0.1:8000/reports/r-1.png")
    (line,) = [line for line in text.splitlines() if line.startswith("![")]
    assert line.endswith("(http://127.0.0.1:8000/reports/r-1.png)")
    assert text.index(line) > text.index("## Per 20 s bucket")


def test_markdown_defines_every_term() -> None:
    text = to_markdown(sample_report())
    definitions = text.split("## Definitions", 1)[1]
    terms = [d.term for d in DEFINITIONS]
    assert {"λ", "μ", "θ", "τ", "ρ", "capacity", "Little's law", "forecast"} <= set(terms)
    for term, _, meaning in DEFINITIONS:
        assert f"- **{term}**: {meaning}" in definitions
    assert "seed" in {d.term: d.meaning for d in DEFINITIONS}["τ"]


def test_markdown_cuts_long_bucket_lists_with_a_note() -> None:
    count = MAX_BUCKET_LINES + 10
    report = build(
        [TypeTotals(OVERALL, arrivals=count)],
        [*bucket_run(OVERALL, [1] * count, 1), *bucket_run("a", [1] * count, 1)],
        seconds=count,
        bucket_seconds=1,
    )
    text = to_markdown(report)
    rows = md_table(text, "## Per 1 s bucket")
    assert len(rows) == MAX_BUCKET_LINES
    assert rows[0][0] == "00:00:10"  # the first 10 are cut
    assert rows[-1][0] == "00:02:09"
    assert f"The last {MAX_BUCKET_LINES} of {count} buckets" in text


def test_markdown_lists_every_bucket_up_to_the_limit() -> None:
    report = build([], bucket_run(OVERALL, [1] * MAX_BUCKET_LINES, 1), seconds=MAX_BUCKET_LINES, bucket_seconds=1)
    text = to_markdown(report)
    assert len(md_table(text, "## Per 1 s bucket")) == MAX_BUCKET_LINES
    assert "The last" not in text
