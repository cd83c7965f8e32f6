"""The report's one schema: each figure of a report row declared once, with its label, unit and kind.

`flowhook.metrics` builds reports; its renderers' columns, the JSON rows of `flowhook report --json`, the
Prefect table artifact and the store's `reports` columns are all derived from `ROW_FIELDS` (and the per-report
`REPORT_FIELDS`), so adding a figure is one entry here (and a column in whichever human table should show it).
A field names where its value is on a report row (`totals.arrivals`), so this module imports neither the
report nor the store: both read it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["text", "time", "count", "rate", "ratio", "seconds", "share"]
"""How a figure reads: a count is a whole number, a rate is per second, a share is a fraction shown as a percent;
`ratio` is any other plain figure. It picks the stored column's type and the renderers' formats."""

_SQL: dict[Kind, str] = {
    "text": "VARCHAR",
    "time": "TIMESTAMP",
    "count": "BIGINT",
    "rate": "DOUBLE",
    "ratio": "DOUBLE",
    "seconds": "DOUBLE",
    "share": "DOUBLE",
}


def _read(obj: Any, path: str) -> Any:
    """The attribute at the dotted `path` of `obj`, None past a part that is None (a row without a forecast)."""
    for part in path.split("."):
        if obj is None:
            return None
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class Field:
    """One figure of a report row: `name` is its JSON key and stored column, `label` and `unit` head its column
    in a table, `path` is where it is on a `flowhook.metrics.TypeReport`."""

    name: str
    label: str
    kind: Kind
    path: str
    unit: str | None = None
    short: str | None = None
    """The terminal's two-line header, where `label` would be too wide (default: `label`)."""
    table: bool = False
    """Whether the Prefect table artifact (a summary) has it."""
    required: bool = False

    def value(self, row: Any) -> Any:
        """The figure on the report row `row`, unrounded (None where the row has none)."""
        return _read(row, self.path)

    @property
    def heading(self) -> str:
        """The label with its unit: `λ (ev/s)`."""
        return self.label if self.unit is None else f"{self.label} ({self.unit})"

    @property
    def sql(self) -> str:
        """The stored column's type."""
        return _SQL[self.kind] + (" NOT NULL" if self.required else "")


@dataclass(frozen=True)
class ReportField:
    """A figure of the whole report (`path` on a `flowhook.metrics.Report`), repeated on each stored row."""

    name: str
    kind: Kind
    path: str
    required: bool = False

    def value(self, report: Any) -> Any:
        return _read(report, self.path)

    @property
    def sql(self) -> str:
        return _SQL[self.kind] + (" NOT NULL" if self.required else "")


ROW_FIELDS: tuple[Field, ...] = (
    Field("event_type", "type", "text", "event_type", table=True, required=True),
    Field("n", "N", "count", "totals.arrivals", short="N\nreceived", table=True),
    Field("m", "M", "count", "totals.completions", short="M\nstored", table=True),
    Field("failed", "failed", "count", "totals.failed", short="\nfailed", table=True),
    Field("in_flight", "in flight", "count", "totals.in_flight", short="in\nflight", table=True),
    Field("arrival_rate", "λ", "rate", "arrival_rate", unit="ev/s", table=True),
    Field("peak_arrival_rate", "peak λ", "rate", "peak_arrival_rate", unit="ev/s", table=True),
    Field("processing_rate", "μ", "rate", "processing_rate", unit="ev/s", table=True),
    Field("capacity", "capacity", "rate", "capacity", unit="ev/busy-s", short="capacity\n(ev/busy-s)", table=True),
    Field("utilisation", "ρ", "ratio", "utilisation", short="\nρ", table=True),
    Field("throughput", "θ", "rate", "throughput", unit="ev/s", table=True),
    Field("tau_seconds", "τ = 1/θ", "seconds", "tau_seconds", unit="s, seed model", table=True),
    Field("busy_seconds", "busy", "seconds", "totals.busy_seconds", unit="s"),
    Field("steps", "steps", "count", "totals.steps"),
    Field("workers", "workers", "count", "totals.workers"),
    Field("backlog_start", "backlog at start", "count", "totals.backlog_start", short="backlog\nat start"),
    Field("backlog_end", "backlog at end", "count", "totals.backlog_end", short="backlog\nat end"),
    Field("p50_seconds", "p50", "seconds", "latency.p50", unit="s", short="\np50", table=True),
    Field("p95_seconds", "p95", "seconds", "latency.p95", unit="s", short="\np95", table=True),
    Field("p99_seconds", "p99", "seconds", "latency.p99", unit="s", short="\np99", table=True),
    Field("max_seconds", "max", "seconds", "latency.max", unit="s", short="\nmax", table=True),
    Field("mean_backlog", "sampled backlog L", "ratio", "little.sampled_backlog", short="sampled\nbacklog L"),
    Field(
        "little_predicted", "λ × W from timestamps", "ratio", "little.counted_backlog", short="λ × W from\ntimestamps"
    ),
    Field("little_gap", "Little gap", "share", "little.gap", short="\ngap", table=True),
    Field("little_watched_share", "share watched", "share", "little.watched_share", short="share\nwatched"),
    Field("little_verdict", "Little check", "text", "little.verdict", short="\ncheck", table=True),
    Field("skewed", "clock skewed", "count", "totals.skewed"),
    Field("max_skew_seconds", "max clock skew", "seconds", "totals.max_skew_seconds", unit="s"),
    Field(
        "saturation_rate",
        "blows up at λ ≥",
        "rate",
        "forecast.saturation_rate",
        unit="ev/s",
        short="blows up at\nλ ≥ (ev/s)",
    ),
    Field("forecast_p99_seconds", "p99 at λ", "seconds", "forecast.latency_quantile", unit="s", short="p99\nat λ"),
    Field(
        "workers_needed",
        "workers for target",
        "count",
        "forecast.workers_needed",
        short="workers\nfor target",
        table=True,
    ),
)
"""Every figure of a report row (a type, or all types), in the order tables show them."""

FIELDS: dict[str, Field] = {f.name: f for f in ROW_FIELDS}

REPORT_FIELDS: tuple[ReportField, ...] = (
    ReportField("report_id", "text", "report_id", required=True),
    ReportField("generated_at", "time", "generated_at", required=True),
    ReportField("window_start", "time", "window.start"),
    ReportField("window_end", "time", "window.end"),
    ReportField("span_seconds", "seconds", "window.seconds"),
    ReportField("bucket_seconds", "seconds", "window.bucket_seconds"),
    ReportField("target_p99_seconds", "seconds", "target_p99_seconds"),
    ReportField("bottleneck", "text", "bottleneck.name"),
    ReportField("bottleneck_utilisation", "ratio", "bottleneck.utilisation"),
    ReportField("pipeline_saturation_rate", "rate", "saturation_rate"),
)
"""Figures of the whole report that each stored row repeats, so one row reads alone."""

CHART_PATH = ("chart_path", "VARCHAR")
"""The stored rows' chart image, saved beside the report rather than part of it."""


def _finite(value: Any) -> Any:
    """JSON has no infinity: an unbounded figure (an unstable queue's p99) is written as null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def row_values(row: Any) -> dict[str, Any]:
    """A report row's figures by name, unrounded, an unbounded one as None (for the JSON and the store)."""
    return {f.name: _finite(f.value(row)) for f in ROW_FIELDS}


def report_columns() -> tuple[tuple[str, str], ...]:
    """The store's `reports` columns and their types: the keys, the per-report figures, then each row's."""
    return (
        *((f.name, f.sql) for f in REPORT_FIELDS if f.required),
        *((f.name, f.sql) for f in ROW_FIELDS if f.required),
        *((f.name, f.sql) for f in REPORT_FIELDS if not f.required),
        *((f.name, f.sql) for f in ROW_FIELDS if not f.required),
        CHART_PATH,
    )
