"""What every renderer takes from a report the same way: its warnings, its rows per stage, its all-types buckets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flowhook.metrics.render._figures import number
from flowhook.metrics.report import OVERALL, STAGES, BucketTotals, LatencyStats, Report, TypeReport
from flowhook.names import OUTCOMES
from flowhook.report_schema import FIELDS, Field, Kind

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
    failed = [(r.event_type, r.little) for r in report.rows if r.little is not None and r.little.verdict == "fails"]
    for event_type, little in failed:
        notes.append(
            f"Little's law fails for {event_type}: the backlog sampled from the spool (L = "
            f"{number(little.sampled_backlog)}) and λ × W from the stored timestamps "
            f"({number(little.counted_backlog)}) "
            f"differ by {number(100 * little.gap)}%, more than 5% and than sampling explains: events are counted "
            "wrong (rows lost or doubled, timestamps shifted, or events in the spool the store does not know), or, "
            "a few percent over, the CPUs were saturated and batches left the spool late after their commits."
        )
    incomplete = [r.event_type for r in report.rows if r.little is not None and r.little.verdict == "incomplete"]
    if incomplete:
        notes.append(
            f"Little's law is checked on part of the window only for {', '.join(incomplete)}: the gateway's samples "
            "cover less than 90% of the time events spent in the system (it was not running all the time)."
        )
    if not report.sampled and report.rows[-1].totals.backlog_seconds > 0:
        notes.append(
            "Little's law is not checked: no sample of the gateway's queue covers the window (sampling is off, "
            "the spool is on S3, or the gateway was not running)."
        )
    if report.cpus:
        crowded = [
            f"{r.event_type} ({r.forecast.workers_needed})"
            for r in report.rows
            if r.forecast is not None and (r.forecast.workers_needed or 0) > report.cpus
        ]
        if crowded:
            notes.append(
                f"The p99 target needs more worker runs than this machine's {report.cpus} CPUs: {', '.join(crowded)}. "
                "Runs past the CPU count share them, so the forecast is optimistic here: add machines (the ECS pool)."
            )
    in_flight = report.rows[-1].totals.in_flight
    if in_flight:
        notes.append(f"{in_flight:,} events received in the window were not stored by its end (in flight).")
    return notes


def little_verdict(row: TypeReport) -> str:
    """The Little's law check in a word: holds, FAILS, incomplete, or why there is none."""
    if row.little is None:
        return "—"
    return {"holds": "holds", "fails": "FAILS", "incomplete": "incomplete"}[row.little.verdict]


def workers(row: TypeReport) -> str:
    """The forecast's workers for the p99 target, in words where there is no number."""
    if row.forecast is None:
        return "—"
    if row.forecast.workers_needed is None:
        return "none can"
    return number(row.forecast.workers_needed)


INGRESS_COLUMNS = ("offered", *OUTCOMES)
"""The columns of the deliveries table, each a key of `ingress_rows`' cells."""
INGRESS_HEADERS = tuple(column.replace("_", " ") for column in INGRESS_COLUMNS)


def ingress_rows(report: Report) -> list[tuple[str, dict[str, int]]]:
    """Per source and type, deliveries by outcome ("offered" is their sum), in the report's order; refusals of
    deliveries never read have no type, shown as `—`. A delivery of several types counts under its first."""
    rows: dict[str, dict[str, int]] = {}
    for count in report.ingress:
        key = f"{count.source or '—'} / {count.event_type or '—'}"
        cells = rows.setdefault(key, dict.fromkeys(INGRESS_COLUMNS, 0))
        cells[count.outcome] = cells.get(count.outcome, 0) + count.deliveries
        cells["offered"] += count.deliveries
    return [(name, cells) for name, cells in rows.items() if cells["offered"]]


def refusals(report: Report) -> str:
    """Deliveries refused or timed out, by status and code: `429 rate_limited ×12, 503 overloaded ×3`."""
    by_status: dict[tuple[int, str], int] = {}
    for count in report.ingress:
        if count.outcome in ("refused", "timed_out") and count.deliveries:
            key = (count.status, count.code)
            by_status[key] = by_status.get(key, 0) + count.deliveries
    return ", ".join(f"{status} {code} ×{n:,}" for (status, code), n in sorted(by_status.items()))


def bottleneck_line(report: Report) -> str | None:
    """The stage that limits the pipeline and where it saturates, in a sentence (None: no stage measured)."""
    stage = report.bottleneck
    if stage is None or stage.utilisation is None:
        return None
    rate = report.saturation_rate
    where = f"; with today's mix the pipeline saturates near λ = {number(rate)} events/s" if rate else ""
    cpus = f" ({report.cpus} CPUs)" if report.cpus else ""
    return f"Bottleneck: {stage.name}, ρ = {number(stage.utilisation)}{where}{cpus}."


Cell = Callable[[TypeReport], str]
Column = tuple[str, Cell]
Formats = dict[Kind, Callable[[Any], str]]


def field_columns(names: tuple[str, ...], formats: Formats, *, header: Callable[[Field], str]) -> tuple[Column, ...]:
    """Columns of the report's `FIELDS` (`flowhook.report_schema`), each headed by `header` and formatted by its
    kind; the check and the workers read in words rather than as a figure."""
    return tuple((header(FIELDS[name]), _cell(FIELDS[name], formats)) for name in names)


def _cell(field: Field, formats: Formats) -> Cell:
    if field.name in _IN_WORDS:
        return _IN_WORDS[field.name]
    fmt = formats.get(field.kind, number)
    return lambda row: fmt(field.value(row))


_IN_WORDS: dict[str, Cell] = {"little_verdict": little_verdict, "workers_needed": workers}
