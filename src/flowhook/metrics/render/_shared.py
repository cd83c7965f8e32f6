"""What every renderer takes from a report the same way: its warnings, its rows per stage, its all-types buckets."""

from __future__ import annotations

from flowhook.metrics.render._figures import number
from flowhook.metrics.report import OVERALL, STAGES, BucketTotals, LatencyStats, Report, TypeReport

STAGE_ORDER = tuple(STAGES)


def stage_rows(report: Report) -> list[tuple[TypeReport, str, LatencyStats]]:
    """(row, stage, its latency) for every type and stage with figures, types in the report's order."""
    return [
        (row, stage, stats)
        for row in report.rows
        for stage in STAGE_ORDER
        if (stats := row.totals.stages.get(stage)) is not None
    ]


def overall_buckets(report: Report) -> list[BucketTotals]:
    """The buckets of all types together, oldest first."""
    return [b for b in report.buckets if b.event_type == OVERALL]


def warnings(report: Report) -> list[str]:
    """The sentences every renderer puts first: what makes the figures below suspect or incomplete."""
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
            f"is ahead by up to {number(skew.max_skew_seconds)} s); their occurred→received and occurred→stored "
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


def workers(row: TypeReport) -> str:
    """The forecast's workers for the p99 target, in words where there is no number."""
    if row.forecast is None:
        return "—"
    if row.forecast.workers_needed is None:
        return "none can"
    return number(row.forecast.workers_needed)
