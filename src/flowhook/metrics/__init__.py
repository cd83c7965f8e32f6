"""Metrics: arrival and processing rates, throughput and latency percentiles for a reporting window.

Contract: pure functions over `EventTimes` tuples, with no I/O and no Prefect, so the reporting flow
only fetches times, calls `build_report` and hands the result to a renderer. Every row of a report
shares one span T, so λ and μ of the per-type rows add up to the "all" row; τ = 1/θ is a model,
the percentiles are measured.
"""

from flowhook.metrics.render import (
    STORE_COLUMNS,
    to_json_dict,
    to_markdown,
    to_rich_table,
    to_store_rows,
    to_table_rows,
)
from flowhook.metrics.report import (
    OVERALL,
    EventTimes,
    LatencyStats,
    Report,
    TypeReport,
    build_report,
    latency_stats,
    percentile,
)

__all__ = [
    "OVERALL",
    "STORE_COLUMNS",
    "EventTimes",
    "LatencyStats",
    "Report",
    "TypeReport",
    "build_report",
    "latency_stats",
    "percentile",
    "to_json_dict",
    "to_markdown",
    "to_rich_table",
    "to_store_rows",
    "to_table_rows",
]
