"""Present a `Report`: Markdown and table artifacts, JSON, terminal tables, and rows for the store's report tables."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from flowhook.audit import to_json_dict as audit_dict
from flowhook.metrics.queueing import MODEL
from flowhook.metrics.report import OVERALL, STAGES, LatencyStats, Report, TypeReport
from flowhook.watchdog import to_json_dict as heartbeat_dict

DEFINITIONS: tuple[tuple[str, str], ...] = (
    ("N, M", "Arrivals (events received in the window) and completions (events stored in it, failed ones included)."),
    ("T", "The window's length; every rate below is a count over T. Buckets cut T into equal slices."),
    ("λ", "Arrival rate N/T from the `received` times; peak λ is the busiest bucket's."),
    ("μ", "Processing rate M/T: completions per second over the window."),
    ("capacity", "μ as capacity: events stored per second a worker was busy (claimed batches handled → stored)."),
    ("θ", "Throughput min(λ, μ), as the seed defines it."),
    ("τ", "The seed's model 1/θ: seconds per event at throughput θ. A model, not a measurement."),
    ("ρ", "Utilisation λ/capacity: the share of one worker's time the arrivals need; above 1 it cannot keep up."),
    ("p50/p95/p99/max", "Measured latency percentiles of the events stored in the window, per stage (linear interp.)."),
    ("backlog", "Events received but not stored (the spool's in-flight ones included), at a bucket's end."),
    ("Little's law", "Mean backlog L against λ × mean time in system W; they agree within 5% only in steady state."),
    ("forecast", "M/M/c from capacity and λ: the rate where latency blows up, p99 at λ, workers for the p99 target."),
)

_STAGE_ORDER = tuple(STAGES)


def _round(value: float, digits: int = 4) -> float:
    """Round to `digits` significant figures, but never drop integer digits (12345.6 -> 12346.0)."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, max(0, digits - 1 - math.floor(math.log10(abs(value)))))


def _fmt(value: float | int | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if math.isinf(value):
        return "∞"
    rounded = _round(value)
    if rounded == 0 or not math.isfinite(rounded):
        return f"{rounded:g}"
    decimals = max(0, 3 - math.floor(math.log10(abs(rounded))))
    text = f"{rounded:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _time(value: datetime) -> str:
    return value.strftime("%H:%M:%S")


_Cell = Callable[[TypeReport], str]
_RATES: tuple[tuple[str, _Cell], ...] = (
    ("type", lambda r: r.event_type),
    ("N", lambda r: _fmt(r.totals.arrivals)),
    ("M", lambda r: _fmt(r.totals.completions)),
    ("failed", lambda r: _fmt(r.totals.failed)),
    ("in flight", lambda r: _fmt(r.totals.in_flight)),
    ("λ (ev/s)", lambda r: _fmt(r.arrival_rate)),
    ("peak λ", lambda r: _fmt(r.peak_arrival_rate)),
    ("μ (ev/s)", lambda r: _fmt(r.processing_rate)),
    ("θ (ev/s)", lambda r: _fmt(r.throughput)),
)

_CAPACITY: tuple[tuple[str, _Cell], ...] = (
    ("type", lambda r: r.event_type),
    ("capacity (ev/busy-s)", lambda r: _fmt(r.capacity)),
    ("ρ", lambda r: _fmt(r.utilisation)),
    ("τ = 1/θ (s, seed model)", lambda r: _fmt(r.tau_seconds)),
    ("p50 (s)", lambda r: _fmt(r.latency.p50 if r.latency else None)),
    ("p95", lambda r: _fmt(r.latency.p95 if r.latency else None)),
    ("p99", lambda r: _fmt(r.latency.p99 if r.latency else None)),
    ("max", lambda r: _fmt(r.latency.max if r.latency else None)),
)
"""Measured percentiles here are received→stored, the time an event spends inside flowhook."""

_LITTLE: tuple[tuple[str, _Cell], ...] = (
    ("type", lambda r: r.event_type),
    ("backlog at start", lambda r: _fmt(r.totals.backlog_start)),
    ("at end", lambda r: _fmt(r.totals.backlog_end)),
    ("mean backlog L", lambda r: _fmt(r.little.mean_backlog if r.little else None)),
    ("mean W (s)", lambda r: _fmt(r.little.mean_latency if r.little else None)),
    ("λ × W", lambda r: _fmt(r.little.predicted_backlog if r.little else None)),
    ("gap", lambda r: _pct(r.little.gap if r.little else None)),
    ("steady", lambda r: "—" if r.little is None else ("yes" if r.little.steady else "NO")),
)

_FORECAST: tuple[tuple[str, _Cell], ...] = (
    ("type", lambda r: r.event_type),
    ("μ per worker (ev/s)", lambda r: _fmt(r.forecast.service_rate if r.forecast else None)),
    ("ρ", lambda r: _fmt(r.forecast.utilisation if r.forecast else None)),
    ("blows up at λ ≥ (ev/s)", lambda r: _fmt(r.forecast.saturation_rate if r.forecast else None)),
    ("fixed delay d (s)", lambda r: _fmt(r.forecast.fixed_delay if r.forecast else None)),
    ("p99 at λ (s)", lambda r: _fmt(r.forecast.latency_quantile if r.forecast else None)),
    ("workers for target", lambda r: _workers(r)),
)


def _workers(row: TypeReport) -> str:
    if row.forecast is None:
        return "—"
    if row.forecast.workers_needed is None:
        return "none can"
    return _fmt(row.forecast.workers_needed)


def _stage_rows(report: Report) -> list[tuple[TypeReport, str, LatencyStats | None]]:
    return [(row, stage, row.totals.stages.get(stage)) for row in report.rows for stage in _STAGE_ORDER]


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|",
    ]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return lines


def _window_line(report: Report) -> str:
    window = report.window
    return (
        f"Window {window.start.isoformat()} → {window.end.isoformat()} (T = {_fmt(window.seconds)} s, "
        f"buckets of {_fmt(window.bucket_seconds)} s), generated {report.generated_at.isoformat()}."
    )


def _warnings(report: Report) -> list[str]:
    notes = []
    if report.heartbeat is not None and report.heartbeat.status == "unhealthy":
        notes.append(f"Trigger path {report.heartbeat.summary}.")
    audit = report.audit.warning() if report.audit is not None else None
    if audit is not None:
        notes.append(audit)
    skew = report.clock_skew
    if skew is not None:
        notes.append(
            f"Clock skew: {skew.skewed:,} events say they occurred after flowhook received them (a sender's clock "
            f"is ahead by up to {_fmt(skew.max_skew_seconds)} s); their occurred→received and occurred→stored "
            "figures are wrong by that much. Every other stage uses flowhook's clock only."
        )
    unsteady = [r.event_type for r in report.rows if r.little is not None and not r.little.steady]
    if unsteady:
        notes.append(
            f"Not in steady state: {', '.join(unsteady)} (Little's law gap over 5%): the window cuts through a busy "
            "period or the backlog is growing, so rates over T are averages of changing load."
        )
    in_flight = report.rows[-1].totals.in_flight
    if in_flight:
        notes.append(f"{in_flight:,} events received in the window were not stored by its end (in flight).")
    return notes


def _overall_buckets(report: Report) -> list[list[str]]:
    return [
        [
            _time(b.start),
            _fmt(b.arrivals),
            _fmt(b.completions),
            _fmt(b.arrival_rate),
            _fmt(b.processing_rate),
            _fmt(b.backlog),
            _fmt(b.latency.p50 if b.latency else None),
            _fmt(b.latency.p99 if b.latency else None),
        ]
        for b in report.buckets
        if b.event_type == OVERALL
    ]


_BUCKET_HEADERS = ("start (UTC)", "arrivals", "stored", "λ", "μ", "backlog at end", "p50 (s)", "p99 (s)")
MAX_BUCKET_LINES = 120
"""The Markdown and the terminal list at most this many buckets; the `report_buckets` table has them all."""


def to_markdown(report: Report, *, chart_url: str | None = None) -> str:
    """The report as Markdown for a Prefect markdown artifact or a file a human will read."""
    lines = [f"# flowhook report `{report.report_id}`", "", _window_line(report), ""]
    lines += [f"> **{note}**\n" for note in _warnings(report)]
    lines += ["## Rates", ""]
    lines += _md_table([h for h, _ in _RATES], [[cell(r) for _, cell in _RATES] for r in report.rows])
    lines += ["", "## Capacity and latency (received→stored)", ""]
    lines += _md_table([h for h, _ in _CAPACITY], [[cell(r) for _, cell in _CAPACITY] for r in report.rows])
    lines += ["", "## Latency per stage (seconds, measured)", ""]
    lines += _md_table(
        ["type", "stage", "count", "mean", "p50", "p95", "p99", "max"],
        [
            [row.event_type, STAGES[stage], *_stage_cells(stats)]
            for row, stage, stats in _stage_rows(report)
            if stats is not None
        ],
    )
    lines += ["", "## Backlog and Little's law", ""]
    lines += _md_table([h for h, _ in _LITTLE], [[cell(r) for _, cell in _LITTLE] for r in report.rows])
    lines += ["", f"## Capacity forecast (target p99 ≤ {_fmt(report.target_p99_seconds)} s)", ""]
    forecast_rows = [r for r in report.rows if r.forecast is not None]
    if forecast_rows:
        lines += _md_table([h for h, _ in _FORECAST], [[cell(r) for _, cell in _FORECAST] for r in forecast_rows])
    else:
        lines.append("No worker time was measured in the window, so there is nothing to forecast from.")
    lines += ["", f"Model: {MODEL}", "", f"## Per {_fmt(report.window.bucket_seconds)} s bucket (all types)", ""]
    if chart_url:
        lines += [f"![arrivals vs processing and latency per bucket]({chart_url})", ""]
    buckets = _overall_buckets(report)
    lines += _md_table(_BUCKET_HEADERS, buckets[-MAX_BUCKET_LINES:])
    if len(buckets) > MAX_BUCKET_LINES:
        lines += ["", f"The last {MAX_BUCKET_LINES} of {len(buckets)} buckets; `report_buckets` has them all."]
    lines += ["", "## Definitions", ""]
    lines += [f"- **{term}**: {text}" for term, text in DEFINITIONS]
    return "\n".join(lines) + "\n"


def _stage_cells(stats: LatencyStats | None) -> list[str]:
    if stats is None:
        return ["0", "—", "—", "—", "—", "—"]
    return [_fmt(stats.count), *(_fmt(v) for v in (stats.mean, stats.p50, stats.p95, stats.p99, stats.max))]


def _rounded(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else _round(value)


def to_table_rows(report: Report) -> list[dict[str, Any]]:
    """Flat, JSON-able summary rows with rounded numbers, for a Prefect table artifact."""
    rows: list[dict[str, Any]] = []
    for row in report.rows:
        latency = row.latency
        rows.append(
            {
                "type": row.event_type,
                "N": row.totals.arrivals,
                "M": row.totals.completions,
                "failed": row.totals.failed,
                "in flight": row.totals.in_flight,
                "λ (ev/s)": _rounded(row.arrival_rate),
                "peak λ (ev/s)": _rounded(row.peak_arrival_rate),
                "μ (ev/s)": _rounded(row.processing_rate),
                "capacity (ev/busy-s)": _rounded(row.capacity),
                "ρ": _rounded(row.utilisation),
                "θ (ev/s)": _rounded(row.throughput),
                "τ = 1/θ (s, seed model)": _rounded(row.tau_seconds),
                "p50 (s)": None if latency is None else _round(latency.p50),
                "p95 (s)": None if latency is None else _round(latency.p95),
                "p99 (s)": None if latency is None else _round(latency.p99),
                "max (s)": None if latency is None else _round(latency.max),
                "Little gap": None if row.little is None else _round(row.little.gap),
                "workers for target": None if row.forecast is None else row.forecast.workers_needed,
            }
        )
    return rows


def _stats_dict(stats: LatencyStats | None) -> dict[str, Any] | None:
    if stats is None:
        return None
    return {
        "count": stats.count,
        "mean": stats.mean,
        "p50": stats.p50,
        "p95": stats.p95,
        "p99": stats.p99,
        "max": stats.max,
    }


def _finite(value: float | None) -> float | None:
    """JSON has no infinity: an unbounded figure (an unstable queue's p99) is written as null."""
    return None if value is None or not math.isfinite(value) else value


def _row_dict(row: TypeReport) -> dict[str, Any]:
    t = row.totals
    little = row.little
    fc = row.forecast
    return {
        "event_type": row.event_type,
        "n": t.arrivals,
        "m": t.completions,
        "failed": t.failed,
        "in_flight": t.in_flight,
        "arrival_rate": row.arrival_rate,
        "peak_arrival_rate": row.peak_arrival_rate,
        "processing_rate": row.processing_rate,
        "capacity": row.capacity,
        "utilisation": row.utilisation,
        "throughput": row.throughput,
        "tau_seconds": row.tau_seconds,
        "busy_seconds": t.busy_seconds,
        "steps": t.steps,
        "workers": t.workers,
        "backlog_start": t.backlog_start,
        "backlog_end": t.backlog_end,
        "clock_skew": {"events": t.skewed, "max_seconds": t.max_skew_seconds},
        "stages": {stage: _stats_dict(t.stages.get(stage)) for stage in _STAGE_ORDER},
        "little": None
        if little is None
        else {
            "mean_backlog": little.mean_backlog,
            "arrival_rate": little.arrival_rate,
            "mean_latency": little.mean_latency,
            "predicted_backlog": little.predicted_backlog,
            "gap": little.gap,
            "steady": little.steady,
        },
        "forecast": None
        if fc is None
        else {
            "model": fc.model,
            "servers": fc.servers,
            "service_rate": fc.service_rate,
            "utilisation": fc.utilisation,
            "saturation_rate": fc.saturation_rate,
            "fixed_delay": fc.fixed_delay,
            "quantile": fc.quantile,
            "latency_quantile": _finite(fc.latency_quantile),
            "target_seconds": fc.target_seconds,
            "workers_needed": fc.workers_needed,
        },
    }


def to_json_dict(report: Report) -> dict[str, Any]:
    """Everything in the report, unrounded, with datetimes as ISO-8601 strings (JSON-able as is)."""
    return {
        "report_id": report.report_id,
        "generated_at": report.generated_at.isoformat(),
        "window_start": report.window.start.isoformat(),
        "window_end": report.window.end.isoformat(),
        "span_seconds": report.window.seconds,
        "bucket_seconds": report.window.bucket_seconds,
        "target_p99_seconds": report.target_p99_seconds,
        "warnings": _warnings(report),
        "heartbeat": None if report.heartbeat is None else heartbeat_dict(report.heartbeat),
        "audit": None if report.audit is None else audit_dict(report.audit),
        "rows": [_row_dict(row) for row in report.rows],
        "buckets": [
            {
                "event_type": b.event_type,
                "start": b.start.isoformat(),
                "seconds": b.seconds,
                "arrivals": b.arrivals,
                "completions": b.completions,
                "arrival_rate": b.arrival_rate,
                "processing_rate": b.processing_rate,
                "backlog": b.backlog,
                "latency": _stats_dict(b.latency),
            }
            for b in report.buckets
        ],
        "definitions": dict(DEFINITIONS),
    }


def _rich_table(title: str, columns: Sequence[tuple[str, _Cell]], rows: Sequence[TypeReport]) -> Table:
    table = Table(title=title, title_justify="left")
    for i, (header, _) in enumerate(columns):
        table.add_column(header, justify="left" if i == 0 else "right")
    for i, row in enumerate(rows):
        # A rule above the "all" row sets the total apart from the per-type rows.
        table.add_row(*(cell(row) for _, cell in columns), end_section=i == len(rows) - 2)
    return table


def to_rich(report: Report, *, buckets: int = 30) -> Group:
    """The report for the terminal: the same tables as the Markdown, the last `buckets` buckets."""
    parts: list[Any] = [Text(f"flowhook report {report.report_id}\n{_window_line(report)}", style="bold")]
    parts += [Text(note, style="yellow") for note in _warnings(report)]
    parts.append(_rich_table(f"Rates over T = {_fmt(report.window.seconds)} s", _RATES, report.rows))
    parts.append(_rich_table("Capacity and latency (received→stored)", _CAPACITY, report.rows))
    stages = Table(title="Latency per stage (s, measured)", title_justify="left")
    for header in ("type", "stage", "count", "mean", "p50", "p95", "p99", "max"):
        stages.add_column(header, justify="left" if header in ("type", "stage") else "right")
    for row, stage, stats in _stage_rows(report):
        if stats is not None:
            stages.add_row(row.event_type, STAGES[stage], *_stage_cells(stats), end_section=stage == _STAGE_ORDER[-1])
    parts += [stages, _rich_table("Backlog and Little's law", _LITTLE, report.rows)]
    forecast_rows = [r for r in report.rows if r.forecast is not None]
    if forecast_rows:
        parts.append(
            _rich_table(
                f"Capacity forecast, M/M/c (target p99 ≤ {_fmt(report.target_p99_seconds)} s)", _FORECAST, forecast_rows
            )
        )
    table = Table(title=f"Per {_fmt(report.window.bucket_seconds)} s bucket, all types", title_justify="left")
    for i, header in enumerate(_BUCKET_HEADERS):
        table.add_column(header, justify="left" if i == 0 else "right")
    for cells in _overall_buckets(report)[-buckets:]:
        table.add_row(*cells)
    parts.append(table)
    return Group(*parts)


def to_store_rows(report: Report, *, chart_path: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Rows for the store's `reports`, `report_stages` and `report_buckets` tables."""
    common = {"report_id": report.report_id}
    reports = []
    for row in report.rows:
        t, latency, little, fc = row.totals, row.latency, row.little, row.forecast
        reports.append(
            {
                **common,
                "generated_at": report.generated_at,
                "event_type": row.event_type,
                "window_start": report.window.start,
                "window_end": report.window.end,
                "span_seconds": report.window.seconds,
                "bucket_seconds": report.window.bucket_seconds,
                "n": t.arrivals,
                "m": t.completions,
                "failed": t.failed,
                "in_flight": t.in_flight,
                "backlog_start": t.backlog_start,
                "backlog_end": t.backlog_end,
                "arrival_rate": row.arrival_rate,
                "peak_arrival_rate": row.peak_arrival_rate,
                "processing_rate": row.processing_rate,
                "capacity": row.capacity,
                "utilisation": row.utilisation,
                "busy_seconds": t.busy_seconds,
                "workers": t.workers,
                "throughput": row.throughput,
                "tau_seconds": row.tau_seconds,
                "p50_seconds": None if latency is None else latency.p50,
                "p95_seconds": None if latency is None else latency.p95,
                "p99_seconds": None if latency is None else latency.p99,
                "max_seconds": None if latency is None else latency.max,
                "mean_backlog": None if little is None else little.mean_backlog,
                "little_predicted": None if little is None else little.predicted_backlog,
                "little_gap": None if little is None else little.gap,
                "steady": None if little is None else little.steady,
                "skewed": t.skewed,
                "max_skew_seconds": t.max_skew_seconds,
                "saturation_rate": None if fc is None else fc.saturation_rate,
                "forecast_p99_seconds": None if fc is None else _finite(fc.latency_quantile),
                "workers_needed": None if fc is None else fc.workers_needed,
                "target_p99_seconds": report.target_p99_seconds,
                "chart_path": chart_path,
            }
        )
    stages = [
        {
            **common,
            "event_type": row.event_type,
            "stage": stage,
            "span": STAGES[stage],
            "count": stats.count,
            "mean_seconds": stats.mean,
            "p50_seconds": stats.p50,
            "p95_seconds": stats.p95,
            "p99_seconds": stats.p99,
            "max_seconds": stats.max,
        }
        for row, stage, stats in _stage_rows(report)
        if stats is not None
    ]
    buckets = [
        {
            **common,
            "event_type": b.event_type,
            "bucket_start": b.start,
            "bucket_seconds": b.seconds,
            "arrivals": b.arrivals,
            "completions": b.completions,
            "arrival_rate": b.arrival_rate,
            "processing_rate": b.processing_rate,
            "backlog": b.backlog,
            "p50_seconds": None if b.latency is None else b.latency.p50,
            "p95_seconds": None if b.latency is None else b.latency.p95,
            "p99_seconds": None if b.latency is None else b.latency.p99,
        }
        for b in report.buckets
    ]
    return {"reports": reports, "report_stages": stages, "report_buckets": buckets}
