"""The stores' tables and views: the events table, the report tables (and their keys), the views for people.

Both backends create the same schema, with one difference: a DuckLake catalog has no keys, so its report
tables are created without them (upserts there go by `MERGE`, under the store's write lock).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa

from flowhook.report_schema import report_columns
from flowhook.store.records import naive_utc

# No key on `id`: a VARCHAR primary key's index made every write 3-5x slower, and more so as the table grew
# (and DuckLake has no keys at all). `write_events` skips stored ids by a join instead, which is exact because
# every writer holds the store's write lock (the file lock, or the lake's advisory lock) from check to commit.
EVENTS_COLUMNS = """
  id VARCHAR NOT NULL, type VARCHAR NOT NULL, source VARCHAR NOT NULL,
  occurred TIMESTAMP NOT NULL, received TIMESTAMP NOT NULL,
  emitted TIMESTAMP, started TIMESTAMP, stored TIMESTAMP,
  batch_id VARCHAR NOT NULL, flow_run_id VARCHAR, status VARCHAR NOT NULL, error VARCHAR,
  data JSON NOT NULL, result JSON, attempts INTEGER DEFAULT 1, handled TIMESTAMP"""
EVENTS_HANDLED = "ALTER TABLE events ADD COLUMN IF NOT EXISTS handled TIMESTAMP"
"""`handled` (when the step's handlers were done, before its write) came after the first files were written."""
EVENTS_DDL = f"CREATE TABLE IF NOT EXISTS events ({EVENTS_COLUMNS})"
# The report tables: one row per report and type, per report, type and stage, per report, type and bucket.
# Columns are added, never dropped, so a file written by an older flowhook gains the new ones on open.
REPORT_TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "reports": report_columns(),  # derived from the report's one schema (`flowhook.report_schema`)
    "report_stages": (
        ("report_id", "VARCHAR NOT NULL"),
        ("event_type", "VARCHAR NOT NULL"),
        ("stage", "VARCHAR NOT NULL"),
        ("span", "VARCHAR"),
        ("count", "BIGINT"),
        ("mean_seconds", "DOUBLE"),
        ("p50_seconds", "DOUBLE"),
        ("p95_seconds", "DOUBLE"),
        ("p99_seconds", "DOUBLE"),
        ("max_seconds", "DOUBLE"),
    ),
    "report_buckets": (
        ("report_id", "VARCHAR NOT NULL"),
        ("event_type", "VARCHAR NOT NULL"),
        ("bucket_start", "TIMESTAMP NOT NULL"),
        ("bucket_seconds", "DOUBLE"),
        ("arrivals", "BIGINT"),
        ("completions", "BIGINT"),
        ("arrival_rate", "DOUBLE"),
        ("processing_rate", "DOUBLE"),
        ("backlog", "BIGINT"),
        ("p50_seconds", "DOUBLE"),
        ("p95_seconds", "DOUBLE"),
        ("p99_seconds", "DOUBLE"),
        ("offered", "BIGINT"),
        ("refused", "BIGINT"),
    ),
}
REPORT_KEYS = {
    "reports": ("report_id", "event_type"),
    "report_stages": ("report_id", "event_type", "stage"),
    "report_buckets": ("report_id", "event_type", "bucket_start"),
}
# Each audit of the store against the spool's done batches (`flowhook.audit`), written as a report table is.
AUDIT_TABLE: tuple[tuple[str, str], ...] = (
    ("audited_at", "TIMESTAMP NOT NULL"),
    ("spool", "VARCHAR"),
    ("done_batches", "BIGINT"),
    ("acknowledged", "BIGINT"),
    ("missing", "BIGINT"),
    ("doubled", "BIGINT"),
    ("missing_ids", "VARCHAR"),
    ("doubled_ids", "VARCHAR"),
    ("seconds", "DOUBLE"),
)
# The gateway's per-second samples of its queue and counts of its deliveries (`flowhook.sampling`), imported
# from its files: `second_start` is the second's start, `writer` the gateway process that wrote them.
SAMPLE_TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "backlog_samples": (
        ("second_start", "TIMESTAMP NOT NULL"),
        ("writer", "VARCHAR NOT NULL"),
        ("event_type", "VARCHAR NOT NULL"),
        ("covered_seconds", "DOUBLE"),
        ("samples", "BIGINT"),
        ("event_seconds", "DOUBLE"),
        ("open_seconds", "DOUBLE"),
        ("ready_seconds", "DOUBLE"),
        ("sent_seconds", "DOUBLE"),
        ("claimed_seconds", "DOUBLE"),
        ("peak", "BIGINT"),
    ),
    "ingress_counts": (
        ("second_start", "TIMESTAMP NOT NULL"),
        ("writer", "VARCHAR NOT NULL"),
        ("source", "VARCHAR NOT NULL"),
        ("event_type", "VARCHAR NOT NULL"),
        ("status", "INTEGER NOT NULL"),
        ("code", "VARCHAR NOT NULL"),
        ("outcome", "VARCHAR"),
        ("deliveries", "BIGINT"),
        ("events", "BIGINT"),
    ),
    "gateway_usage": (
        ("second_start", "TIMESTAMP NOT NULL"),
        ("writer", "VARCHAR NOT NULL"),
        ("wall_seconds", "DOUBLE"),
        ("cpu_seconds", "DOUBLE"),
    ),
}
SAMPLE_KEYS = {
    "backlog_samples": ("second_start", "writer", "event_type"),
    "ingress_counts": ("second_start", "writer", "source", "event_type", "status", "code"),
    "gateway_usage": ("second_start", "writer"),
}
STORE_TABLES = {**REPORT_TABLES, "audits": AUDIT_TABLE, **SAMPLE_TABLES}
"""Every table besides `events`: the report tables, the audits and the samples."""
STORE_KEYS = {**REPORT_KEYS, "audits": ("audited_at",), **SAMPLE_KEYS}


def seconds_between(later: str, earlier: str) -> str:
    """SQL for `later - earlier` in seconds, a DOUBLE with microsecond precision (NULL if either is)."""
    return f"((epoch_us({later}) - epoch_us({earlier})) / 1e6)"


_secs = seconds_between


# Views for people querying the file: every event's stage latencies, and the newest report's rows.
_VIEWS = (
    f"""CREATE VIEW IF NOT EXISTS event_latency AS
SELECT id, type, source, status, batch_id, flow_run_id, occurred, received, emitted, started, stored,
  {_secs("received", "occurred")} AS sent_seconds, {_secs("emitted", "received")} AS batched_seconds,
  {_secs("started", "emitted")} AS woken_seconds, {_secs("stored", "started")} AS processed_seconds,
  {_secs("stored", "received")} AS latency_seconds, {_secs("stored", "occurred")} AS end_to_end_seconds
FROM events""",
    """CREATE VIEW IF NOT EXISTS dead_letters AS
SELECT id, type, source, occurred, received, stored, attempts, error, data, batch_id, flow_run_id
FROM events WHERE status = 'failed'""",
    *(
        f"""CREATE VIEW IF NOT EXISTS latest_{table} AS SELECT * FROM {table}
WHERE report_id = (SELECT report_id FROM reports ORDER BY generated_at DESC LIMIT 1)"""
        for table in REPORT_TABLES
    ),
)


def ensure_report_schema(con: duckdb.DuckDBPyConnection, *, keyed: bool = True) -> None:
    """Create the report and audit tables (with their keys if `keyed`), add columns they lack, create the views."""
    have = {
        (table, column)
        for table, column in con.execute(
            "SELECT table_name, column_name FROM duckdb_columns() "
            "WHERE database_name = current_database() AND schema_name = 'main'"
        ).fetchall()
    }
    for table, columns in STORE_TABLES.items():
        if not any(t == table for t, _ in have):
            body = ", ".join(f"{name} {kind}" for name, kind in columns)
            key = f", PRIMARY KEY ({', '.join(STORE_KEYS[table])})" if keyed else ""
            con.execute(f"CREATE TABLE {table} ({body}{key})")
            continue
        for name, kind in columns:
            if (table, name) not in have:
                con.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind.removesuffix(' NOT NULL')}")
    for view in _VIEWS:
        con.execute(view)


def report_rows(tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[tuple[str, pa.Table]]:
    """A report's rows as one Arrow table per report table, over all its columns (absent ones NULL), times
    naive UTC, one row per key (the last given wins). Raises ValueError on an unknown table or column."""
    prepared = []
    for table, rows in tables.items():
        if table not in STORE_TABLES:
            raise ValueError(f"unknown report table: {table}")
        if not rows:
            continue
        names = [name for name, _ in STORE_TABLES[table]]
        unknown = set().union(*rows) - set(names)
        if unknown:
            raise ValueError(f"unknown {table} columns: {', '.join(sorted(unknown))}")
        # One INSERT OR REPLACE (or MERGE) keeps the first of two rows with one key; an upsert means the last.
        keys = STORE_KEYS[table]
        rows = list(
            {
                tuple(naive_utc(row[k]) if isinstance(row[k], datetime) else row[k] for k in keys): row for row in rows
            }.values()
        )
        values = {
            name: [naive_utc(v) if isinstance(v, datetime) else v for v in (row.get(name) for row in rows)]
            for name in names
        }
        prepared.append((table, pa.table(values)))
    return prepared
