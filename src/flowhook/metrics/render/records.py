"""The report as data for machines: the JSON of `flowhook report --json`, the rows of the Prefect table artifact,
and the rows of the store's report tables. Unrounded, except the table artifact's."""

from __future__ import annotations

from typing import Any

from flowhook.audit import to_json_dict as audit_dict
from flowhook.metrics.render._figures import finite, rounded, significant
from flowhook.metrics.render._shared import STAGE_ORDER, stage_rows, warnings
from flowhook.metrics.render.definitions import DEFINITIONS
from flowhook.metrics.report import STAGES, LatencyStats, Report, TypeReport
from flowhook.worker.watchdog import to_json_dict as heartbeat_dict


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
                "λ (ev/s)": rounded(row.arrival_rate),
                "peak λ (ev/s)": rounded(row.peak_arrival_rate),
                "μ (ev/s)": rounded(row.processing_rate),
                "capacity (ev/busy-s)": rounded(row.capacity),
                "ρ": rounded(row.utilisation),
                "θ (ev/s)": rounded(row.throughput),
                "τ = 1/θ (s, seed model)": rounded(row.tau_seconds),
                "p50 (s)": None if latency is None else significant(latency.p50),
                "p95 (s)": None if latency is None else significant(latency.p95),
                "p99 (s)": None if latency is None else significant(latency.p99),
                "max (s)": None if latency is None else significant(latency.max),
                "Little gap": None if row.little is None else significant(row.little.gap),
                "Little check": None if row.little is None else row.little.verdict,
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
                "mean_backlog": None if little is None else little.sampled_backlog,
                "little_predicted": None if little is None else little.counted_backlog,
                "little_gap": None if little is None else little.gap,
                "little_watched_share": None if little is None else little.watched_share,
                "little_verdict": None if little is None else little.verdict,
                "skewed": t.skewed,
                "max_skew_seconds": t.max_skew_seconds,
                "saturation_rate": None if fc is None else fc.saturation_rate,
                "forecast_p99_seconds": None if fc is None else finite(fc.latency_quantile),
                "workers_needed": None if fc is None else fc.workers_needed,
                "target_p99_seconds": report.target_p99_seconds,
                "chart_path": chart_path,
                "bottleneck": None if report.bottleneck is None else report.bottleneck.name,
                "bottleneck_utilisation": None if report.bottleneck is None else report.bottleneck.utilisation,
                "pipeline_saturation_rate": report.saturation_rate,
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
