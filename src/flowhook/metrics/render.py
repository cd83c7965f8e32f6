"""Present a `Report`: Markdown and table artifacts, JSON, a terminal table, and store rows."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from rich.table import Table

from flowhook.metrics.report import LatencyStats, Report, TypeReport

STORE_COLUMNS: tuple[str, ...] = (
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
)
"""The keys of every `to_store_rows` dict, in table-column order."""


def _round(value: float, digits: int = 4) -> float:
    """Round to `digits` significant figures, but never drop integer digits (12345.6 -> 12346.0)."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, max(0, digits - 1 - math.floor(math.log10(abs(value)))))


def _fmt(value: float | int | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, int):
        return str(value)
    rounded = _round(value)
    if rounded == 0 or not math.isfinite(rounded):
        return f"{rounded:g}"
    decimals = max(0, 3 - math.floor(math.log10(abs(rounded))))
    text = f"{rounded:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _pcts(stats: LatencyStats | None) -> str:
    return "—" if stats is None else " / ".join(_fmt(v) for v in (stats.p50, stats.p95, stats.p99))


_Column = tuple[str, Callable[[TypeReport], str]]
_COLUMNS: tuple[_Column, ...] = (
    ("type", lambda r: r.event_type),
    ("N", lambda r: _fmt(r.n)),
    ("M", lambda r: _fmt(r.m)),
    ("T (s)", lambda r: _fmt(r.span_seconds)),
    ("λ (ev/s)", lambda r: _fmt(r.arrival_rate)),
    ("μ (ev/s)", lambda r: _fmt(r.processing_rate)),
    ("θ (ev/s)", lambda r: _fmt(r.throughput)),
    ("τ = 1/θ (s, seed model)", lambda r: _fmt(r.tau_seconds)),
    ("p50/p95/p99 received→stored (s)", lambda r: _pcts(r.latency)),
    ("p99 occurred→stored (s)", lambda r: _fmt(r.end_to_end.p99 if r.end_to_end else None)),
    ("in flight", lambda r: _fmt(r.in_flight)),
)

_DEFINITIONS = (
    "- **N**: arrivals, events received in the window; **M**: completions, events stored in the window.",
    "- **T**: the active span inside the window (first arrival to last store), shared by every row "
    "so rates add up across types.",
    "- **λ** = N/T arrival rate; **μ** = M/T processing rate; **θ** = min(λ, μ) throughput.",
    "- **τ** = 1/θ: the seed's simple model of time per event at that throughput, not a measurement.",
    "- **p50/p95/p99**: measured received→stored latencies of the events stored in the window "
    "(linear interpolation); **occurred→stored** adds the sender's side (a late scheduled tick shows here); "
    "**in flight**: arrivals not stored by the window's end.",
)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def to_markdown(report: Report) -> str:
    """The report as Markdown for a Prefect markdown artifact or a file a human will read."""
    span = "no events"
    if report.span_start is not None:
        span = f"{_iso(report.span_start)} → {_iso(report.span_end)}"
    lines = [
        f"# flowhook report `{report.report_id}`",
        "",
        f"Window {_iso(report.window_start)} → {_iso(report.window_end)}, generated {_iso(report.generated_at)}.",
        f"Active span T = {_fmt(report.span_seconds)} s ({span}).",
        "",
        "| " + " | ".join(header for header, _ in _COLUMNS) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(_COLUMNS))) + "|",
    ]
    lines += ["| " + " | ".join(cell(row) for _, cell in _COLUMNS) + " |" for row in report.rows]
    lines += ["", "### Definitions", "", *_DEFINITIONS, ""]
    return "\n".join(lines)


def _rounded(value: float | None) -> float | None:
    return None if value is None else _round(value)


def to_table_rows(report: Report) -> list[dict[str, Any]]:
    """Flat, JSON-able rows with rounded numbers, for a Prefect table artifact."""
    rows: list[dict[str, Any]] = []
    for row in report.rows:
        latency = row.latency
        rows.append(
            {
                "type": row.event_type,
                "N": row.n,
                "M": row.m,
                "T (s)": _round(row.span_seconds),
                "λ (ev/s)": _round(row.arrival_rate),
                "μ (ev/s)": _round(row.processing_rate),
                "θ (ev/s)": _round(row.throughput),
                "τ = 1/θ (s)": _rounded(row.tau_seconds),
                "p50 (s)": None if latency is None else _round(latency.p50),
                "p95 (s)": None if latency is None else _round(latency.p95),
                "p99 (s)": None if latency is None else _round(latency.p99),
                "p99 occurred→stored (s)": None if row.end_to_end is None else _round(row.end_to_end.p99),
                "in flight": row.in_flight,
            }
        )
    return rows


def to_json_dict(report: Report) -> dict[str, Any]:
    """Everything in the report, unrounded, with datetimes as ISO-8601 strings."""
    return {
        "report_id": report.report_id,
        "generated_at": _iso(report.generated_at),
        "window_start": _iso(report.window_start),
        "window_end": _iso(report.window_end),
        "span_start": _iso(report.span_start),
        "span_end": _iso(report.span_end),
        "span_seconds": report.span_seconds,
        "rows": [dataclasses.asdict(row) for row in report.rows],
    }


def to_rich_table(report: Report) -> Table:
    """The same table as the Markdown, for the terminal."""
    table = Table(title=f"flowhook report {report.report_id} (T = {_fmt(report.span_seconds)} s)")
    for i, (header, _) in enumerate(_COLUMNS):
        table.add_column(header, justify="left" if i == 0 else "right")
    for i, row in enumerate(report.rows):
        # A rule above the "all" row sets the total apart from the per-type rows.
        table.add_row(*(cell(row) for _, cell in _COLUMNS), end_section=i == len(report.rows) - 2)
    return table


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


def to_store_rows(report: Report) -> list[dict[str, Any]]:
    """One dict per row with exactly `STORE_COLUMNS`; naive UTC datetimes for DuckDB TIMESTAMP."""
    rows: list[dict[str, Any]] = []
    for row in report.rows:
        latency = row.latency
        rows.append(
            {
                "report_id": report.report_id,
                "generated_at": _naive_utc(report.generated_at),
                "event_type": row.event_type,
                "window_start": _naive_utc(report.window_start),
                "window_end": _naive_utc(report.window_end),
                "span_seconds": row.span_seconds,
                "n": row.n,
                "m": row.m,
                "arrival_rate": row.arrival_rate,
                "processing_rate": row.processing_rate,
                "throughput": row.throughput,
                "tau_seconds": row.tau_seconds,
                "p50_seconds": None if latency is None else latency.p50,
                "p95_seconds": None if latency is None else latency.p95,
                "p99_seconds": None if latency is None else latency.p99,
                "max_seconds": None if latency is None else latency.max,
            }
        )
    return rows
