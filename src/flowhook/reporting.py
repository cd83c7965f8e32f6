"""Build the pipeline report for a window: DuckDB aggregates the per-event timestamps, `metrics` derives the figures.

Events still in the spool (received, not stored) come in from the batch files, so the backlog and
the in-flight counts see what the store has not yet got.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from flowhook.audit import latest_audit
from flowhook.metrics.capacity import GatewayUsage, StepSample
from flowhook.metrics.little import BacklogSample
from flowhook.metrics.report import (
    OVERALL,
    BucketTotals,
    IngressCount,
    LatencyStats,
    Report,
    TypeTotals,
    Window,
    build_report,
)
from flowhook.sampling.archive import window_samples
from flowhook.sampling.compare import backlog_samples, gateway_usage, ingress_counts, with_deliveries
from flowhook.settings import Settings
from flowhook.spool import BatchSpool
from flowhook.store import EventStore
from flowhook.store.duckdb_store import seconds_between
from flowhook.worker.watchdog import check_heartbeat

REPORT_ARTIFACT_KEY = "flowhook-report"
REPORT_TABLE_KEY = "flowhook-report-table"
REPORT_CHART_KEY = "flowhook-report-chart"

# (from, to) timestamp columns of each latency stage in `metrics.STAGES`.
_STAGE_COLUMNS: dict[str, tuple[str, str]] = {
    "sent": ("occurred", "received"),
    "batched": ("received", "emitted"),
    "woken": ("emitted", "started"),
    "processed": ("started", "stored"),
    "latency": ("received", "stored"),
    "end_to_end": ("occurred", "stored"),
}
_STATS = ("count", "mean", "p50", "p95", "p99", "max")
_TYPE = f"CASE WHEN grouping(type) = 1 THEN '{OVERALL}' ELSE type END"
_IN_FLIGHT_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("type", pa.string()),
        ("occurred", pa.timestamp("us")),
        ("received", pa.timestamp("us")),
    ]
)


_secs = seconds_between


# Every event the window can see: stored ones that were still in the system at its start, and the
# spool's in-flight ones the store does not have yet. $s/$e are the window's edges (naive UTC).
_EV = """
CREATE OR REPLACE TEMP TABLE ev AS
SELECT type, status, flow_run_id, occurred, received, emitted, started, handled, stored FROM events
WHERE received < $e AND (stored IS NULL OR stored >= $s)
UNION ALL
SELECT DISTINCT ON (f.id) f.type, 'in flight', NULL, f.occurred, f.received, NULL, NULL, NULL, NULL
FROM in_flight f ANTI JOIN events USING (id)
WHERE f.received < $e
"""

_TOTALS = f"""
SELECT {_TYPE} AS event_type,
  count(*) FILTER (WHERE received >= $s) AS arrivals,
  count(*) FILTER (WHERE stored < $e) AS completions,
  count(*) FILTER (WHERE stored < $e AND status = 'failed') AS failed,
  count(*) FILTER (WHERE received >= $s AND (stored IS NULL OR stored >= $e)) AS in_flight,
  count(*) FILTER (WHERE received < $s AND (stored IS NULL OR stored > $s)) AS backlog_start,
  count(*) FILTER (WHERE stored IS NULL OR stored >= $e) AS backlog_end,
  coalesce(sum(greatest(0, {_secs("least(coalesce(stored, $e), $e)", "greatest(received, $s)")})), 0)
    AS backlog_seconds,
  coalesce(sum({_secs("least(coalesce(stored, $now), $now)", "received")}) FILTER (WHERE received >= $s), 0)
    AS sojourn_seconds,
  count(*) FILTER (WHERE occurred > received) AS skewed,
  coalesce(max({_secs("occurred", "received")}) FILTER (WHERE occurred > received), 0) AS max_skew_seconds
FROM ev GROUP BY GROUPING SETS ((type), ())
"""

# A step is one pass of a worker run: handle its claimed batches (all stamped `started`), then one write. Each
# step that stored in the window, once: its busy time, and split at `handled` into handling and writing (for
# `metrics.capacity`). Rows stored before the `handled` column existed count as busy (a step with `events` 0)
# but have no split; a step's rows are written together, so they have `handled` all or none.
_STEP = f"""
CREATE OR REPLACE TEMP TABLE step AS
SELECT type, flow_run_id, {_secs("max(stored)", "started")} AS busy, count(handled) AS events,
  {_secs("max(handled)", "started")} AS handle_seconds, {_secs("max(stored)", "max(handled)")} AS write_seconds
FROM ev WHERE stored < $e AND started IS NOT NULL GROUP BY type, flow_run_id, started
"""

_BUSY = f"""
SELECT {_TYPE} AS event_type, coalesce(sum(busy), 0) AS busy_seconds, count(*) AS steps,
  count(DISTINCT flow_run_id) AS workers
FROM step GROUP BY GROUPING SETS ((type), ())
"""

_STEPS = "SELECT type AS event_type, events, handle_seconds, write_seconds FROM step WHERE events > 0"


def _stage_columns() -> str:
    columns = []
    for stage, (start, end) in _STAGE_COLUMNS.items():
        value = _secs(end, start)
        columns += [
            f"count({value}) AS {stage}_count",
            f"avg({value}) AS {stage}_mean",
            f"quantile_cont({value}, [0.5, 0.95, 0.99]) AS {stage}_q",
            f"max({value}) AS {stage}_max",
        ]
    return ",\n  ".join(columns)


_STAGES = f"""
SELECT {_TYPE} AS event_type,
  {_stage_columns()}
FROM ev WHERE stored < $e GROUP BY GROUPING SETS ((type), ())
"""

_BUCKET = "((epoch_us({column}) - epoch_us($s)) // $bucket_us)"
_LATENCY = _secs("stored", "received")
_BUCKETS = f"""
WITH arrived AS (
  SELECT {_TYPE} AS event_type, {_BUCKET.format(column="received")} AS k, count(*) AS arrivals
  FROM ev WHERE received >= $s GROUP BY GROUPING SETS ((type, k), (k))
), done AS (
  SELECT {_TYPE} AS event_type, {_BUCKET.format(column="stored")} AS k, count(*) AS completions,
    avg({_LATENCY}) AS mean, quantile_cont({_LATENCY}, [0.5, 0.95, 0.99]) AS q, max({_LATENCY}) AS max
  FROM ev WHERE stored < $e GROUP BY GROUPING SETS ((type, k), (k))
), edges AS (
  SELECT k, least($s + to_microseconds((k + 1) * $bucket_us), $e) AS edge FROM range($buckets) AS r(k)
), waiting AS (
  SELECT {_TYPE} AS event_type, k, count(*) AS backlog
  FROM edges JOIN ev ON ev.received < edges.edge AND (ev.stored IS NULL OR ev.stored >= edges.edge)
  GROUP BY GROUPING SETS ((type, k), (k))
)
SELECT 'arrived' AS kind, event_type, k, arrivals AS n, NULL AS mean, NULL AS q, NULL AS max FROM arrived
UNION ALL SELECT 'done', event_type, k, completions, mean, q, max FROM done
UNION ALL SELECT 'waiting', event_type, k, backlog, NULL, NULL, NULL FROM waiting
"""


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


def _stats(count: int, mean: float | None, q: Sequence[float] | None, top: float | None) -> LatencyStats | None:
    if not count or mean is None or q is None or top is None:
        return None
    p50, p95, p99 = q
    return LatencyStats(count=count, mean=mean, p50=p50, p95=p95, p99=p99, max=top)


def _used(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters `sql` names: DuckDB refuses any extra one."""
    return {name: value for name, value in params.items() if re.search(rf"\${name}\b", sql)}


def _records(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    cursor = con.execute(sql, _used(sql, params))
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@dataclass
class Collected:
    """What the store and the gateway's samples hold about a window, before the report derives its figures."""

    totals: list[TypeTotals]
    buckets: list[BucketTotals]
    samples: dict[str, BacklogSample] | None = None
    ingress: list[IngressCount] = field(default_factory=list)
    gateway: GatewayUsage | None = None
    steps: list[StepSample] = field(default_factory=list)


def collect(
    db: EventStore,
    window: Window,
    *,
    in_flight: Sequence[tuple[str, str, datetime, datetime]],
    now: datetime,
    samples_dir: Path | None = None,
) -> Collected:
    """The store's totals per type and per bucket for the window (in-flight events from the spool included),
    and the gateway's samples against them (those in the store, and those still in `samples_dir`)."""
    flying = pa.Table.from_pylist(
        [
            {"id": i, "type": t, "occurred": _naive(occurred), "received": _naive(received)}
            for i, t, occurred, received in in_flight
        ],
        schema=_IN_FLIGHT_SCHEMA,
    )
    params = {
        "s": _naive(window.start),
        "e": _naive(window.end),
        "now": _naive(now),
        "bucket_us": round(window.bucket_seconds * 1e6),
        "buckets": window.bucket_count,
    }
    with db.connect(reports=True) as con:
        con.register("in_flight", flying)
        try:
            con.execute(_EV, _used(_EV, params))
            totals = _records(con, _TOTALS, params)
            con.execute(_STEP, _used(_STEP, params))
            busy = {r["event_type"]: r for r in _records(con, _BUSY, params)}
            stages = {r["event_type"]: r for r in _records(con, _STAGES, params)}
            buckets = _records(con, _BUCKETS, params)
            steps = [StepSample(**row) for row in _records(con, _STEPS, params)]
            sampled = window_samples(con, samples_dir, window.start, window.end)
            backlog = backlog_samples(con, sampled, window, now=now)
        finally:
            con.unregister("in_flight")
            con.execute("DROP TABLE IF EXISTS step")
            con.execute("DROP TABLE IF EXISTS ev")
    type_totals = [_type_totals(row, busy.get(row["event_type"]), stages.get(row["event_type"])) for row in totals]
    return Collected(
        totals=type_totals,
        buckets=with_deliveries(_bucket_totals(window, [t.event_type for t in type_totals], buckets), sampled, window),
        samples=backlog,
        ingress=ingress_counts(sampled),
        gateway=gateway_usage(sampled),
        steps=steps,
    )


def _type_totals(row: dict[str, Any], busy: dict[str, Any] | None, stages: dict[str, Any] | None) -> TypeTotals:
    stage_stats: dict[str, LatencyStats | None] = {}
    for stage in _STAGE_COLUMNS:
        if stages is None:
            stage_stats[stage] = None
            continue
        stage_stats[stage] = _stats(
            stages[f"{stage}_count"], stages[f"{stage}_mean"], stages[f"{stage}_q"], stages[f"{stage}_max"]
        )
    return TypeTotals(
        event_type=row["event_type"],
        arrivals=row["arrivals"],
        completions=row["completions"],
        failed=row["failed"],
        in_flight=row["in_flight"],
        backlog_start=row["backlog_start"],
        backlog_end=row["backlog_end"],
        backlog_seconds=float(row["backlog_seconds"]),
        sojourn_seconds=float(row["sojourn_seconds"]),
        busy_seconds=float(busy["busy_seconds"]) if busy else 0.0,
        steps=busy["steps"] if busy else 0,
        workers=busy["workers"] if busy else 0,
        skewed=row["skewed"],
        max_skew_seconds=float(row["max_skew_seconds"]),
        stages=stage_stats,
    )


def _bucket_totals(window: Window, types: list[str], rows: list[dict[str, Any]]) -> list[BucketTotals]:
    """Every (type, bucket) pair, zeros included, so charts and tables show the quiet buckets too."""
    cells: dict[tuple[str, int], dict[str, Any]] = {}
    for row in rows:
        cell = cells.setdefault((row["event_type"], int(row["k"])), {})
        if row["kind"] == "arrived":
            cell["arrivals"] = row["n"]
        elif row["kind"] == "waiting":
            cell["backlog"] = row["n"]
        else:
            cell["completions"] = row["n"]
            cell["latency"] = _stats(row["n"], row["mean"], row["q"], row["max"])
    buckets = []
    for event_type in types:
        for k in range(window.bucket_count):
            start = window.start + timedelta(seconds=k * window.bucket_seconds)
            seconds = min(window.bucket_seconds, (window.end - start).total_seconds())
            cell = cells.get((event_type, k), {})
            buckets.append(
                BucketTotals(
                    event_type=event_type,
                    start=start,
                    seconds=seconds,
                    arrivals=cell.get("arrivals", 0),
                    completions=cell.get("completions", 0),
                    backlog=cell.get("backlog", 0),
                    latency=cell.get("latency"),
                )
            )
    return buckets


def chart_url(settings: Settings, name: str) -> str:
    """Where the gateway serves a chart saved under `settings.reports_dir` (the UI shows it from there)."""
    host = "127.0.0.1" if settings.gateway_host in ("0.0.0.0", "::", "") else settings.gateway_host
    return f"http://{host}:{settings.gateway_port}/reports/{name}"


def window_report(
    db: EventStore,
    spool: BatchSpool | None,
    window: Window,
    *,
    target_p99_seconds: float,
    now: datetime | None = None,
    heartbeat_max_age_seconds: float | None = None,
    up_since: datetime | None = None,
    samples_dir: Path | None = None,
) -> Report:
    """The report over `window` (its end clipped to now: the future has no events yet).

    With `heartbeat_max_age_seconds` it also checks the trigger path's heartbeat as of now (`up_since`:
    when the stack started, if known), so an unhealthy path shows as a warning. The store's latest audit
    (`flowhook.audit`) comes along, so acknowledged events it found missing or doubled show as one too.
    """
    now = now or datetime.now(UTC)
    if window.end > now:
        window = Window(window.start, now, window.bucket_seconds)
    found = collect(db, window, in_flight=spool.in_flight() if spool else [], now=now, samples_dir=samples_dir)
    heartbeat = None
    if heartbeat_max_age_seconds is not None:
        heartbeat = check_heartbeat(
            db.latest_heartbeat(), now=now, max_age_seconds=heartbeat_max_age_seconds, up_since=up_since
        )
    return build_report(
        found.totals,
        found.buckets,
        window=window,
        generated_at=now,
        report_id=str(uuid.uuid4()),
        target_p99_seconds=target_p99_seconds,
        heartbeat=heartbeat,
        audit=latest_audit(db),
        samples=found.samples,
        ingress=found.ingress,
        gateway=found.gateway,
        steps=found.steps,
        cpus=os.cpu_count(),
    )
