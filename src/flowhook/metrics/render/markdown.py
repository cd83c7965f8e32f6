"""The report as Markdown: every table in full, for the Prefect artifact and for files people read."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from flowhook.metrics.queueing import MODEL
from flowhook.metrics.render._figures import clock, number, percent
from flowhook.metrics.render._shared import (
    INGRESS_COLUMNS,
    INGRESS_HEADERS,
    Formats,
    bottleneck_line,
    field_columns,
    ingress_rows,
    overall_buckets,
    refusals,
    stage_rows,
    warnings,
)
from flowhook.metrics.render.definitions import DEFINITIONS
from flowhook.metrics.report import STAGES, LatencyStats, Report, TypeReport

MAX_BUCKET_LINES = 120
"""The Markdown lists at most this many buckets, the last ones; the `report_buckets` table has them all."""

_Cell = Callable[[TypeReport], str]
_Columns = tuple[tuple[str, _Cell], ...]
_FORMATS: Formats = {"text": str, "share": percent}


def _columns(*names: str) -> _Columns:
    """The schema's fields as Markdown columns, headed with their unit; the type first."""
    return field_columns(("event_type", *names), _FORMATS, header=lambda f: f.heading)


_RATES = _columns("n", "m", "failed", "in_flight", "arrival_rate", "peak_arrival_rate", "processing_rate", "throughput")
_CAPACITY = _columns(
    "capacity", "utilisation", "tau_seconds", "p50_seconds", "p95_seconds", "p99_seconds", "max_seconds"
)
"""Measured percentiles here are received→stored, the time an event spends inside flowhook."""

_LITTLE = _columns(
    "backlog_start", "backlog_end", "mean_backlog", "little_predicted", "little_gap", "little_watched_share",
    "little_verdict",
)  # fmt: skip

_FORECAST: _Columns = (
    *_columns(),
    ("μ per worker (ev/s)", lambda r: number(r.forecast.service_rate if r.forecast else None)),
    ("ρ", lambda r: number(r.forecast.utilisation if r.forecast else None)),
    *field_columns(("saturation_rate",), _FORMATS, header=lambda f: f.heading),
    ("fixed delay d (s)", lambda r: number(r.forecast.fixed_delay if r.forecast else None)),
    *field_columns(("forecast_p99_seconds", "workers_needed"), _FORMATS, header=lambda f: f.heading),
)

_BUCKET_HEADERS = (
    "start (UTC)", "arrivals", "stored", "λ", "μ", "backlog at end", "deliveries offered", "refused", "p50 (s)",
    "p99 (s)",
)  # fmt: skip


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|",
    ]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return lines


def _type_table(columns: Sequence[tuple[str, _Cell]], rows: Sequence[TypeReport]) -> list[str]:
    return _table([h for h, _ in columns], [[cell(r) for _, cell in columns] for r in rows])


def _window_line(report: Report) -> str:
    window = report.window
    return (
        f"Window {window.start.isoformat()} → {window.end.isoformat()} (T = {number(window.seconds)} s, "
        f"buckets of {number(window.bucket_seconds)} s), generated {report.generated_at.isoformat()}."
    )


def _stage_cells(stats: LatencyStats) -> list[str]:
    return [number(stats.count), *(number(v) for v in (stats.mean, stats.p50, stats.p95, stats.p99, stats.max))]


def _bucket_cells(report: Report) -> list[list[str]]:
    return [
        [
            clock(b.start),
            number(b.arrivals),
            number(b.completions),
            number(b.arrival_rate),
            number(b.processing_rate),
            number(b.backlog),
            number(b.offered),
            number(b.refused),
            number(b.latency.p50 if b.latency else None),
            number(b.latency.p99 if b.latency else None),
        ]
        for b in overall_buckets(report)
    ]


def _capacity_section(report: Report) -> list[str]:
    lines = ["## Capacity per stage (events/s)", ""]
    if not report.stages:
        return [*lines, "No stage's capacity was measured in the window (no samples, no steps).", ""]
    lines += _table(
        ["stage", "capacity", "load", "ρ", "measured as"],
        [[s.name, number(s.capacity), number(s.load), number(s.utilisation), s.basis] for s in report.stages],
    )
    line = bottleneck_line(report)
    return [*lines, *(["", f"**{line}**"] if line else []), ""]


def _ingress_section(report: Report) -> list[str]:
    lines = ["## Deliveries offered and answered", ""]
    rows = ingress_rows(report)
    if not rows:
        return [*lines, "No delivery was counted in the window (the gateway's samples do not cover it).", ""]
    lines += _table(
        ["source / type", *INGRESS_HEADERS],
        [[name, *(number(cells[k]) for k in INGRESS_COLUMNS)] for name, cells in rows],
    )
    refused = refusals(report)
    return [*lines, *(["", f"Refused or timed out: {refused}."] if refused else []), ""]


def to_markdown(report: Report, *, chart_url: str | None = None) -> str:
    """The report as Markdown for a Prefect markdown artifact or a file a human will read."""
    lines = [f"# flowhook report `{report.report_id}`", "", _window_line(report), ""]
    lines += [f"> **{note}**\n" for note in warnings(report)]
    lines += ["## Rates", "", *_type_table(_RATES, report.rows)]
    lines += ["", "## Capacity and latency (received→stored)", "", *_type_table(_CAPACITY, report.rows)]
    lines += ["", "## Latency per stage (seconds, measured)", ""]
    lines += _table(
        ["type", "stage", "count", "mean", "p50", "p95", "p99", "max"],
        [[row.event_type, STAGES[stage], *_stage_cells(stats)] for row, stage, stats in stage_rows(report)],
    )
    lines += ["", "## Backlog and Little's law", "", *_type_table(_LITTLE, report.rows)]
    lines += ["", f"## Capacity forecast (target p99 ≤ {number(report.target_p99_seconds)} s)", ""]
    forecast_rows = [r for r in report.rows if r.forecast is not None]
    if forecast_rows:
        lines += _type_table(_FORECAST, forecast_rows)
    else:
        lines.append("No worker time was measured in the window, so there is nothing to forecast from.")
    lines += ["", f"Model: {MODEL}", ""]
    lines += _capacity_section(report)
    lines += _ingress_section(report)
    lines += [f"## Per {number(report.window.bucket_seconds)} s bucket (all types)", ""]
    if chart_url:
        lines += [f"![arrivals vs processing and latency per bucket]({chart_url})", ""]
    buckets = _bucket_cells(report)
    lines += _table(_BUCKET_HEADERS, buckets[-MAX_BUCKET_LINES:])
    if len(buckets) > MAX_BUCKET_LINES:
        lines += ["", f"The last {MAX_BUCKET_LINES} of {len(buckets)} buckets; `report_buckets` has them all."]
    lines += ["", "## Definitions", ""]
    lines += [f"- **{d.term}**: {d.meaning}" for d in DEFINITIONS]
    return "\n".join(lines) + "\n"
