"""Metrics: λ, μ, θ, τ, measured latency per stage, backlog, Little's law and an M/M/c forecast for a window.

Contract: pure code with no I/O and no Prefect. The store aggregates per-event timestamps
(`flowhook.reporting`), `build_report` derives every figure from those totals, and the renderers
present it. Every rate is a count over the window's length T, so per-type rates add up to the
"all" row; τ = 1/θ is the seed's model, the percentiles are measured.
"""

from flowhook.metrics.queueing import MODEL, Forecast, forecast
from flowhook.metrics.render import (
    DEFINITIONS,
    to_json_dict,
    to_markdown,
    to_rich,
    to_store_rows,
    to_table_rows,
)
from flowhook.metrics.report import (
    OVERALL,
    STAGES,
    BucketTotals,
    LatencyStats,
    LittleCheck,
    Report,
    TypeReport,
    TypeTotals,
    Window,
    build_report,
    latency_stats,
    percentile,
)

__all__ = [
    "DEFINITIONS",
    "MODEL",
    "OVERALL",
    "STAGES",
    "BucketTotals",
    "Forecast",
    "LatencyStats",
    "LittleCheck",
    "Report",
    "TypeReport",
    "TypeTotals",
    "Window",
    "build_report",
    "forecast",
    "latency_stats",
    "percentile",
    "to_json_dict",
    "to_markdown",
    "to_rich",
    "to_store_rows",
    "to_table_rows",
]
