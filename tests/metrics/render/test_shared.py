"""What every renderer shows alike: the warnings first, and the edge cases (an empty window, one event)."""

from __future__ import annotations

import json

import pytest

from flowhook.metrics.render import to_json_dict, to_markdown, to_store_rows, to_table_rows
from tests.metrics.render.reports import (
    empty_report,
    md_table,
    one_event_report,
    rich_text,
    sample_report,
    with_heartbeat,
)


def test_warnings_in_markdown_json_and_rich() -> None:
    report = sample_report()
    assert report.clock_skew is not None
    markdown = to_markdown(report)
    warnings = to_json_dict(report)["warnings"]
    terminal = rich_text(report)
    assert len(warnings) == 4
    skew, little_payment, little_all, in_flight = warnings
    assert skew.startswith("Clock skew: 3 events")
    assert "up to 1.25 s" in skew
    # payment.settled: 20 event-seconds sampled from the spool against 40 from its timestamps.
    assert little_payment.startswith("Little's law fails for payment.settled: ")
    assert "(L = 0.3333)" in little_payment and "(0.6667)" in little_payment and "by 50%" in little_payment
    assert little_all.startswith("Little's law fails for all: ")
    assert in_flight.startswith("6 events received in the window were not stored")
    for note in warnings:
        assert f"> **{note}**" in markdown
    flat = " ".join(terminal.split())  # the terminal wraps long lines
    assert "Clock skew: 3 events" in flat
    assert "Little's law fails for payment.settled" in flat
    assert "6 events received in the window were not stored" in flat
    # The warnings come before the tables.
    assert markdown.index("Clock skew") < markdown.index("## Rates")


def test_no_warnings_when_all_is_well() -> None:
    report = one_event_report()
    assert report.clock_skew is None
    assert to_json_dict(report)["warnings"] == []
    markdown = to_markdown(report)
    assert "Clock skew" not in markdown
    assert "Little's law" not in markdown.split("## Rates")[0]
    assert "in flight)" not in markdown


def test_empty_window_renders_everywhere() -> None:
    report = empty_report()
    markdown = to_markdown(report)
    assert md_table(markdown, "## Rates") == [["all", "0", "0", "0", "0", "0", "0", "0", "0"]]
    assert md_table(markdown, "## Capacity and latency") == [["all", "—", "—", "—", "—", "—", "—", "—"]]
    assert md_table(markdown, "## Latency per stage") == []
    assert md_table(markdown, "## Backlog and Little's law") == [["all", "0", "0", "—", "—", "—", "—", "—"]]
    assert "nothing to forecast from" in markdown
    assert md_table(markdown, "## Per 60 s bucket") == []
    (row,) = to_table_rows(report)
    assert (row["type"], row["N"], row["τ = 1/θ (s, seed model)"], row["p50 (s)"]) == ("all", 0, None, None)
    data = json.loads(json.dumps(to_json_dict(report), allow_nan=False))
    assert [r["event_type"] for r in data["rows"]] == ["all"]
    assert data["buckets"] == []
    assert data["warnings"] == []
    assert "all" in rich_text(report)
    store = to_store_rows(report)
    assert [r["event_type"] for r in store["reports"]] == ["all"]
    assert store["reports"][0]["tau_seconds"] is None
    assert store["reports"][0]["little_verdict"] is None
    assert store["report_stages"] == []
    assert store["report_buckets"] == []


def test_one_event_renders_everywhere() -> None:
    report = one_event_report()
    markdown = to_markdown(report)
    rows = {cells[0]: cells[1:] for cells in md_table(markdown, "## Rates")}
    # λ = peak λ = μ = θ = 1/60
    assert rows["solo"] == ["1", "1", "0", "0", "0.01667", "0.01667", "0.01667", "0.01667"]
    capacity = {cells[0]: cells[1:] for cells in md_table(markdown, "## Capacity and latency")}
    # capacity = 1/0.05 = 20, ρ = (1/60)/20, τ = 60 s, every percentile 0.2 s.
    assert capacity["solo"] == ["20", "0.0008333", "60", "0.2", "0.2", "0.2", "0.2"]
    little = {cells[0]: cells[1:] for cells in md_table(markdown, "## Backlog and Little's law")}
    assert little["solo"][-3:] == ["0.0%", "100.0%", "holds"]  # L = 0.2/60 sampled = λW = (1/60) × 0.2
    assert [r["type"] for r in to_table_rows(report)] == ["solo", "all"]
    json.dumps(to_json_dict(report), allow_nan=False)
    text = rich_text(report)
    assert "solo" in text
    assert "8.33e-4" in text  # ρ, in the terminal's scientific notation
    store = to_store_rows(report)
    assert [(s["event_type"], s["stage"]) for s in store["report_stages"]] == [("solo", "latency"), ("all", "latency")]
    assert len(store["report_buckets"]) == 2


def test_an_unhealthy_trigger_path_is_the_first_warning_everywhere() -> None:
    report = with_heartbeat(14 * 60)
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
    assert note in " ".join(rich_text(report).split())


@pytest.mark.parametrize("stored_ago", [30.0, None])
def test_a_healthy_or_unknown_trigger_path_adds_no_warning(stored_ago: float | None) -> None:
    report = with_heartbeat(stored_ago)
    data = to_json_dict(report)
    assert data["warnings"] == []
    assert data["heartbeat"]["status"] == ("healthy" if stored_ago else "unknown")
    assert "Trigger path" not in to_markdown(report) and "Trigger path" not in rich_text(report)


def test_a_report_without_a_heartbeat_check_says_null() -> None:
    assert one_event_report().heartbeat is None
    assert to_json_dict(one_event_report())["heartbeat"] is None
