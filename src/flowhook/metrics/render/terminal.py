"""The report for a terminal 80 columns wide: the Markdown's figures in narrower tables, the latency stages stacked
under each type, durations with their unit, small figures in scientific notation, and a legend of the symbols.

Nothing is cut to fit: every column folds rather than ends in `…`, so a name longer than the tables allow wraps
onto a second line instead of losing its end.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from itertools import groupby

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from flowhook.metrics.render._figures import clock, compact, duration, number, percent
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
from flowhook.metrics.report import OVERALL, STAGES, Report, TypeReport

DEFAULT_BUCKETS = 30
"""How many of the last buckets the terminal lists unless told otherwise."""

_Cell = Callable[[TypeReport], str]
_Columns = tuple[tuple[str, _Cell], ...]
_FORMATS: Formats = {"count": number, "rate": compact, "ratio": compact, "seconds": duration, "share": percent}


def _columns(*names: str) -> _Columns:
    """The schema's fields as terminal columns: two-line headers, durations with their unit."""
    return field_columns(names, _FORMATS, header=lambda f: f.short or f.label)


_COUNTS = _columns("n", "m", "failed", "in_flight", "backlog_start", "backlog_end")
_RATES = _columns("arrival_rate", "peak_arrival_rate", "processing_rate", "throughput", "tau_seconds")
_CAPACITY = _columns("capacity", "utilisation", "p50_seconds", "p95_seconds", "p99_seconds", "max_seconds")
_LITTLE = _columns("mean_backlog", "little_predicted", "little_gap", "little_watched_share", "little_verdict")
# The capacity and ρ the forecast starts from are in the capacity table already.
_FORECAST: _Columns = (
    *_columns("saturation_rate"),
    ("fixed\ndelay d", lambda r: duration(r.forecast.fixed_delay if r.forecast else None)),
    *_columns("forecast_p99_seconds", "workers_needed"),
)

_UNITS = ("units", "events/s for rates; µs, ms, s, min, h or d for durations")


def _table(title: str, headers: Sequence[str]) -> Table:
    table = Table(
        title=title,
        title_justify="left",
        title_style="bold",
        box=box.HORIZONTALS,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i == 0 else "right", overflow="fold")
    return table


def _type_table(title: str, columns: _Columns, rows: Sequence[TypeReport]) -> Table:
    two_lines = any("\n" in header for header, _ in columns)
    table = _table(title, ["\ntype" if two_lines else "type", *(header for header, _ in columns)])
    for row, following in zip(rows, [*rows[1:], None], strict=True):
        # A rule above the "all" row sets the total apart from the per-type rows.
        last_type = following is not None and following.event_type == OVERALL
        table.add_row(row.event_type, *(cell(row) for _, cell in columns), end_section=last_type)
    return table


def _when(value: datetime, *, beside: datetime) -> str:
    """A time to the second, with its date unless it is `beside`'s."""
    return f"{value:%H:%M:%S}" if value.date() == beside.date() else f"{value:%Y-%m-%d %H:%M:%S}"


def _heading(report: Report) -> list[RenderableType]:
    window = report.window
    lines = [
        Text(f"flowhook report {report.report_id}", style="bold"),
        Text(f"window {window.start:%Y-%m-%d %H:%M:%S} → {_when(window.end, beside=window.start)} UTC"),
        Text(
            f"T = {number(window.seconds)} s in buckets of {number(window.bucket_seconds)} s; "
            f"generated {_when(report.generated_at, beside=window.end)} UTC"
        ),
    ]
    return [*lines, *(Text(note, style="yellow") for note in warnings(report))]


def _stages(report: Report) -> Table:
    table = _table("Latency per stage, measured", ["type / stage", "count", "mean", "p50", "p95", "p99", "max"])
    by_type = [(name, list(entries)) for name, entries in groupby(stage_rows(report), key=lambda e: e[0].event_type)]
    for name, entries in by_type:
        table.add_row(Text(name, style="bold"))
        for i, (_, stage, stats) in enumerate(entries):
            times = (stats.mean, stats.p50, stats.p95, stats.p99, stats.max)
            last = i == len(entries) - 1 and name != by_type[-1][0]
            table.add_row(f"  {STAGES[stage]}", number(stats.count), *map(duration, times), end_section=last)
    return table


def _buckets(report: Report, count: int) -> Table:
    every = overall_buckets(report)
    shown = every[-count:]
    cut = f": the last {len(shown)} of {len(every)}" if len(shown) < len(every) else ""
    table = _table(
        f"Per {number(report.window.bucket_seconds)} s bucket, all types{cut}",
        ["start\n(UTC)", "\nreceived", "\nstored", "\nλ", "\nμ", "backlog\nat end", "\nrefused", "\np50", "\np99"],
    )
    for b in shown:
        p50, p99 = (b.latency.p50, b.latency.p99) if b.latency else (None, None)
        table.add_row(
            clock(b.start),
            number(b.arrivals),
            number(b.completions),
            compact(b.arrival_rate),
            compact(b.processing_rate),
            number(b.backlog),
            number(b.refused),
            duration(p50),
            duration(p99),
        )
    return table


def _capacity_stages(report: Report) -> list[RenderableType]:
    if not report.stages:
        return [Text("No stage's capacity was measured in the window (no samples, no steps).")]
    table = _table("Capacity per stage (events/s)", ["stage", "capacity", "load", "ρ"])
    for stage in report.stages:
        table.add_row(stage.name, compact(stage.capacity), compact(stage.load), compact(stage.utilisation))
    line = bottleneck_line(report)
    return [table, *([Text(line, style="bold")] if line else [])]


def _ingress(report: Report) -> list[RenderableType]:
    rows = ingress_rows(report)
    if not rows:
        return [Text("No delivery was counted in the window (the gateway's samples do not cover it).")]
    table = _table("Deliveries offered and answered", ["source / type", *INGRESS_HEADERS])
    for name, cells in rows:
        table.add_row(name, *(number(cells[key]) for key in INGRESS_COLUMNS))
    refused = refusals(report)
    return [table, *([Text(f"refused or timed out: {refused}")] if refused else [])]


def legend() -> Table:
    """Every term of `DEFINITIONS` in a few words, one a line."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row(Text("Legend", style="bold"))
    for definition in DEFINITIONS:
        table.add_row(f"  {definition.term}", definition.gloss)
    table.add_row(f"  {_UNITS[0]}", _UNITS[1])
    return table


def to_rich(report: Report, *, buckets: int = DEFAULT_BUCKETS) -> Group:
    """The report for the terminal, each line within 80 columns: the Markdown's figures and the last `buckets`
    buckets (0: no bucket table)."""
    if buckets < 0:
        raise ValueError(f"buckets is how many of the last buckets to show, 0 or more; got {buckets}")
    rows = report.rows
    forecast_rows = [r for r in rows if r.forecast is not None]
    sections: list[RenderableType] = [
        _type_table(f"Events over T = {number(report.window.seconds)} s", _COUNTS, rows),
        _type_table("Rates (events/s) and τ", _RATES, rows),
        _type_table("Capacity and latency received→stored", _CAPACITY, rows),
        _stages(report),
        _type_table("Backlog and Little's law", _LITTLE, rows),
        _type_table(f"Forecast, M/M/c (target p99 ≤ {duration(report.target_p99_seconds)})", _FORECAST, forecast_rows)
        if forecast_rows
        else Text("No worker time was measured in the window, so there is nothing to forecast from."),
    ]
    sections += [Group(*_capacity_stages(report)), Group(*_ingress(report))]
    if buckets:
        sections.append(_buckets(report, buckets))
    sections.append(legend())
    return Group(*_heading(report), *(line for section in sections for line in (Text(), section)))
