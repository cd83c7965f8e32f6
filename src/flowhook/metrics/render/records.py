"""The report as data for machines: the JSON of `flowhook report --json`, the rows of the Prefect table artifact,
and the rows of the store's report tables. Unrounded, except the table artifact's."""

from __future__ import annotations

from typing import Any

from flowhook.audit import to_json_dict as audit_dict
from flowhook.metrics.render._figures import finite, rounded
from flowhook.metrics.render._shared import STAGE_ORDER, stage_rows, warnings
from flowhook.metrics.render.definitions import DEFINITIONS
from flowhook.metrics.report import STAGES, LatencyStats, Report, TypeReport
from flowhook.report_schema import REPORT_FIELDS, ROW_FIELDS, row_values
from flowhook.worker.watchdog import to_json_dict as heartbeat_dict


def to_table_rows(report: Report) -> list[dict[str, Any]]:
    """Flat, JSON-able summary rows with rounded numbers, for a Prefect table artifact: the `table` fields."""
    return [
        {f.heading: f.value(row) if f.kind in ("text", "count") else rounded(f.value(row)) for f in _TABLE}
        for row in report.rows
    ]


_TABLE = tuple(f for f in ROW_FIELDS if f.table)


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


def _row_dict(row: TypeReport) -> dict[str, Any]:
    t = row.totals
    little = row.little
    fc = row.forecast
    return {
        **row_values(row),
        "clock_skew": {"events": t.skewed, "max_seconds": t.max_skew_seconds},
        "stages": {stage: _stats_dict(t.stages.get(stage)) for stage in STAGE_ORDER},
        "little": None
        if little is None
        else {
            "sampled_seconds": little.sample.sampled_seconds,
            "counted_seconds": little.sample.counted_seconds,
            "watched_seconds": little.sample.watched_seconds,
            "sampled_backlog": little.sampled_backlog,
            "counted_backlog": little.counted_backlog,
            "gap": little.gap,
            "sigma": little.sigma,
            "allowed": little.allowed,
            "watched_share": little.watched_share,
            "verdict": little.verdict,
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
            "latency_quantile": finite(fc.latency_quantile),
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
        "warnings": warnings(report),
        "sampled": report.sampled,
        "ingress": [
            {
                "source": c.source,
                "event_type": c.event_type,
                "status": c.status,
                "code": c.code,
                "outcome": c.outcome,
                "deliveries": c.deliveries,
                "events": c.events,
            }
            for c in report.ingress
        ],
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
                "offered": b.offered,
                "refused": b.refused,
                "latency": _stats_dict(b.latency),
            }
            for b in report.buckets
        ],
        "stages": [
            {
                "name": s.name,
                "capacity": s.capacity,
                "load": s.load,
                "utilisation": s.utilisation,
                "basis": s.basis,
            }
            for s in report.stages
        ],
        "bottleneck": None if report.bottleneck is None else report.bottleneck.name,
        "saturation_rate": report.saturation_rate,
        "cpus": report.cpus,
        "definitions": {d.term: d.meaning for d in DEFINITIONS},
    }


def to_store_rows(report: Report, *, chart_path: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Rows for the store's `reports`, `report_stages` and `report_buckets` tables."""
    common = {"report_id": report.report_id}
    whole = {f.name: f.value(report) for f in REPORT_FIELDS}
    reports = [{**whole, **row_values(row), "chart_path": chart_path} for row in report.rows]
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
        for row, stage, stats in stage_rows(report)
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
            "offered": b.offered,
            "refused": b.refused,
            "p50_seconds": None if b.latency is None else b.latency.p50,
            "p95_seconds": None if b.latency is None else b.latency.p95,
            "p99_seconds": None if b.latency is None else b.latency.p99,
        }
        for b in report.buckets
    ]
    return {"reports": reports, "report_stages": stages, "report_buckets": buckets}
