"""Metrics: λ, μ, θ, τ, measured latency per stage, backlog, Little's law and an M/M/c forecast for a window.

Contract: pure code with no I/O and no Prefect. The store aggregates per-event timestamps
(`flowhook.reporting`), `build_report` derives every figure from those totals, and the renderers
present it. Every rate is a count over the window's length T, so per-type rates add up to the
"all" row; τ = 1/θ is the seed's model, the percentiles are measured.
"""

from flowhook.metrics.little import BacklogSample, LittleCheck, little_check
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
    IngressCount,
    LatencyStats,
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
    "BacklogSample",
    "BucketTotals",
    "Forecast",
    "IngressCount",
    "LatencyStats",
    "LittleCheck",
    "Report",
    "TypeReport",
    "TypeTotals",
    "Window",
    "build_report",
    "forecast",
    "latency_stats",
    "little_check",
    "percentile",
    "to_json_dict",
    "to_markdown",
    "to_rich",
    "to_store_rows",
    "to_table_rows",
]
