"""The DuckDB event store: one file, shared by many processes through a sidecar `flock`."""

from __future__ import annotations

import fcntl
import logging
import os
import random
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import repeat
from operator import attrgetter, sub
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from flowhook.durable import fsync_dir
from flowhook.events import Event

logger = logging.getLogger(__name__)

# No key on `id`: a VARCHAR primary key's index made every write 3-5x slower, and more so as the table grew.
# `write_events` skips stored ids by a join instead, which is exact because every writer holds the file lock.
_EVENTS_COLUMNS = """
  id VARCHAR NOT NULL, type VARCHAR NOT NULL, source VARCHAR NOT NULL,
  occurred TIMESTAMP NOT NULL, received TIMESTAMP NOT NULL,
  emitted TIMESTAMP, started TIMESTAMP, stored TIMESTAMP,
  batch_id VARCHAR NOT NULL, flow_run_id VARCHAR, status VARCHAR NOT NULL, error VARCHAR,
  data JSON NOT NULL, result JSON, attempts INTEGER DEFAULT 1"""
_EVENTS_DDL = f"CREATE TABLE IF NOT EXISTS events ({_EVENTS_COLUMNS})"
# A file from before retries lacks `attempts`; every row it holds had one handler call. A no-op (no write) once there.
_EVENTS_ATTEMPTS = "ALTER TABLE events ADD COLUMN IF NOT EXISTS attempts INTEGER DEFAULT 1"
# A file from before the key was dropped has one; its rows move to an unkeyed table, once, in one transaction.
_KEYED_EVENTS = """
SELECT count(*) FROM duckdb_constraints()
WHERE database_name = current_database() AND schema_name = 'main' AND table_name = 'events'
  AND constraint_type = 'PRIMARY KEY'
"""
# The report tables: one row per report and type, per report, type and stage, per report, type and bucket.
# Columns are added, never dropped, so a file written by an older flowhook gains the new ones on open.
REPORT_TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "reports": (
        ("report_id", "VARCHAR NOT NULL"),
        ("generated_at", "TIMESTAMP NOT NULL"),
        ("event_type", "VARCHAR NOT NULL"),
        ("window_start", "TIMESTAMP"),
        ("window_end", "TIMESTAMP"),
        ("span_seconds", "DOUBLE"),
        ("n", "BIGINT"),
        ("m", "BIGINT"),
        ("arrival_rate", "DOUBLE"),
        ("processing_rate", "DOUBLE"),
        ("throughput", "DOUBLE"),
        ("tau_seconds", "DOUBLE"),
        ("p50_seconds", "DOUBLE"),
        ("p95_seconds", "DOUBLE"),
        ("p99_seconds", "DOUBLE"),
        ("max_seconds", "DOUBLE"),
        ("bucket_seconds", "DOUBLE"),
        ("failed", "BIGINT"),
        ("in_flight", "BIGINT"),
        ("backlog_start", "BIGINT"),
        ("backlog_end", "BIGINT"),
        ("peak_arrival_rate", "DOUBLE"),
        ("capacity", "DOUBLE"),
        ("utilisation", "DOUBLE"),
        ("busy_seconds", "DOUBLE"),
        ("workers", "BIGINT"),
        ("mean_backlog", "DOUBLE"),
        ("little_predicted", "DOUBLE"),
        ("little_gap", "DOUBLE"),
        ("steady", "BOOLEAN"),
        ("skewed", "BIGINT"),
        ("max_skew_seconds", "DOUBLE"),
        ("saturation_rate", "DOUBLE"),
        ("forecast_p99_seconds", "DOUBLE"),
        ("workers_needed", "BIGINT"),
        ("target_p99_seconds", "DOUBLE"),
        ("chart_path", "VARCHAR"),
    ),
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
    ),
}
_REPORT_KEYS = {
    "reports": ("report_id", "event_type"),
    "report_stages": ("report_id", "event_type", "stage"),
    "report_buckets": ("report_id", "event_type", "bucket_start"),
}


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


def _ensure_report_schema(con: duckdb.DuckDBPyConnection) -> None:
    have = {
        (table, column)
        for table, column in con.execute(
            "SELECT table_name, column_name FROM duckdb_columns() "
            "WHERE database_name = current_database() AND schema_name = 'main'"
        ).fetchall()
    }
    for table, columns in REPORT_TABLES.items():
        if not any(t == table for t, _ in have):
            body = ", ".join(f"{name} {kind}" for name, kind in columns)
            con.execute(f"CREATE TABLE {table} ({body}, PRIMARY KEY ({', '.join(_REPORT_KEYS[table])}))")
            continue
        for name, kind in columns:
            if (table, name) not in have:
                con.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind.removesuffix(' NOT NULL')}")
    for view in _VIEWS:
        con.execute(view)


_TS = pa.timestamp("us")
_TS_UTC = pa.timestamp("us", tz="UTC")
_US = pa.duration("us")
_CHUNK = 10_000  # rows per streamed Arrow batch: small enough to overlap, large enough to amortise
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EVENT_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("type", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("occurred", _TS, nullable=False),
        pa.field("received", _TS, nullable=False),
        pa.field("emitted", _TS),
        pa.field("started", _TS),
        pa.field("stored", _TS),
        pa.field("batch_id", pa.string(), nullable=False),
        pa.field("flow_run_id", pa.string()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("error", pa.string()),
        pa.field("data", pa.string(), nullable=False),  # JSON text
        pa.field("result", pa.string()),  # JSON text
        pa.field("attempts", pa.int32(), nullable=False),
    ]
)
_TIME_COLUMNS = frozenset(f.name for f in EVENT_SCHEMA if f.type == _TS)
_JSON_COLUMNS = frozenset({"data", "result"})
_STATUSES = frozenset({"ok", "failed"})


# DuckDB's file starts with three 4 KiB headers (the main one, then two database headers), the magic at byte 8.
# A file cut short of them was never committed to: DuckDB's own creation died part-way (e.g. a full disk).
_HEADERS_SIZE = 3 * 4096
_MAGIC = slice(8, 12), b"DUCK"


def _is_unfinished(path: Path) -> bool:
    """The file is a DuckDB file whose creation stopped before its headers were written: it holds nothing."""
    if path.stat().st_size >= _HEADERS_SIZE:
        return False
    wal = _wal(path)
    if wal.exists() and wal.stat().st_size:  # a log to replay: leave it all to DuckDB
        return False
    with path.open("rb") as fh:
        head = fh.read(_HEADERS_SIZE)
    where, magic = _MAGIC
    return not head or head[where] == magic


def _wal(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


class StoreLockTimeout(TimeoutError):
    """Another process held the store's lock file for longer than `lock_timeout`."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One event as stored: the envelope, its pipeline timestamps, and how processing went."""

    id: str
    type: str
    source: str
    occurred: datetime
    received: datetime
    emitted: datetime | None
    started: datetime | None
    stored: datetime | None
    batch_id: str
    flow_run_id: str | None
    status: str
    error: str | None
    data: Mapping[str, Any]
    result: Mapping[str, Any] | None
    attempts: int = 1
    """Handler calls it took: 1 for a first-time success, up to the retry policy's `attempts` for a failure."""

    def __post_init__(self) -> None:
        if self.status not in _STATUSES:
            raise ValueError(f"status must be 'ok' or 'failed', not {self.status!r}")
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, not {self.attempts}")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A stored failed event: its envelope (ready to re-spool), the last error, and how many calls it had."""

    event: Event
    error: str | None
    attempts: int
    stored: datetime | None
    batch_id: str


def _json_default(value: object) -> object:
    # orjson only serialises real dicts; accept any Mapping, e.g. a MappingProxyType.
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _json_column(values: list[Mapping[str, Any] | None]) -> pa.Array:
    # Decode at once: keeping 100k of orjson's bytes alive costs far more than the decode (oversized buffers).
    dumps, default = orjson.dumps, _json_default
    return pa.array([None if v is None else dumps(v, default=default).decode() for v in values], type=pa.string())


def _repeated_time(value: datetime | None, count: int) -> pa.Array:
    return pa.repeat(pa.scalar(value, type=_TS_UTC), count).cast(_TS)


def _time_column(values: list[datetime | None]) -> pa.Array:
    # `emitted`, `started` and `stored` are one time for a whole batch: convert it once, not per row.
    first = values[0]
    if values[-1] == first and values.count(first) == len(values):
        return _repeated_time(first, len(values))
    try:
        # Aware values as microseconds since the epoch: 3x faster than Arrow's own per-value offset lookups.
        return pa.array(list(map(sub, values, repeat(_EPOCH))), type=_US).cast(pa.int64()).cast(_TS)
    except TypeError:
        # A None or a naive value cannot be subtracted from an aware one: Arrow takes naive ones as UTC.
        return pa.array(values, type=_TS_UTC).cast(_TS)


def to_arrow(events: Sequence[StoredEvent], *, stored: datetime | None = None) -> pa.Table:
    """The events as an Arrow table in `EVENT_SCHEMA`: the fast path into DuckDB.

    `stored`, when given, is every row's `stored` time (instead of each event's own).
    """
    if not events:
        return EVENT_SCHEMA.empty_table()
    columns: dict[str, pa.Array] = {}
    for field in EVENT_SCHEMA:
        if field.name == "stored" and stored is not None:
            columns[field.name] = _repeated_time(stored, len(events))
            continue
        values = list(map(attrgetter(field.name), events))
        if field.name in _TIME_COLUMNS:
            columns[field.name] = _time_column(values)
        elif field.name in _JSON_COLUMNS:
            columns[field.name] = _json_column(values)
        else:
            columns[field.name] = pa.array(values, type=field.type)
    return pa.table(columns, schema=EVENT_SCHEMA)


def _one_by_id(events: Sequence[StoredEvent]) -> tuple[Sequence[StoredEvent], list[str]]:
    """The events without in-batch repeats of an id, and their ids: an id's first ok copy wins, else its last."""
    ids = [event.id for event in events]
    if len(set(ids)) == len(ids):
        return events, ids
    chosen: dict[str, StoredEvent] = {}
    for event in events:
        kept = chosen.get(event.id)
        if kept is None or kept.status != "ok":
            chosen[event.id] = event
    return list(chosen.values()), list(chosen)


def _stored_ids(con: duckdb.DuckDBPyConnection, ids: list[str]) -> set[str]:
    """Which of `ids` the events table already holds (usually none: then this is one cheap join)."""
    con.register("incoming_ids", pa.table({"id": pa.array(ids, type=pa.string())}))
    try:
        rows = con.execute("SELECT id FROM incoming_ids SEMI JOIN events USING (id)").fetchall()
    finally:
        con.unregister("incoming_ids")
    return {event_id for (event_id,) in rows}


def _failed_ids(con: duckdb.DuckDBPyConnection, known: set[str]) -> set[str]:
    """Which of the stored ids `known` are stored only as failed (a retry or replay replaces those rows)."""
    # A registered Arrow table, not `IN (SELECT unnest(?))`: a list parameter of 100k ids takes seconds.
    con.register("known_ids", pa.table({"id": pa.array(list(known), type=pa.string())}))
    try:
        rows = con.execute(
            "SELECT id FROM events SEMI JOIN known_ids USING (id) GROUP BY id HAVING bool_and(status = 'failed')"
        )
        return {event_id for (event_id,) in rows.fetchall()}
    finally:
        con.unregister("known_ids")


def _delete_failed(con: duckdb.DuckDBPyConnection, ids: set[str]) -> None:
    """Delete the failed rows of `ids` (inside the caller's transaction)."""
    con.register("replaced_ids", pa.table({"id": pa.array(list(ids), type=pa.string())}))
    try:
        con.execute("DELETE FROM events WHERE status = 'failed' AND id IN (SELECT id FROM replaced_ids)")
    finally:
        con.unregister("replaced_ids")


class _ArrowStream:
    """The events as Arrow record batches built on demand, so DuckDB stores one chunk while Python builds the next.

    Building Arrow from Python objects and DuckDB's insert each take about half of a write; streaming runs them
    on two cores at once. An error raised while building (e.g. data that is not JSON) reaches DuckDB as a
    generic one: `reraise` puts the original back.
    """

    def __init__(self, events: Sequence[StoredEvent], *, stored: datetime | None, chunk: int = _CHUNK) -> None:
        self.events = events
        self.stored = stored
        self.chunk = chunk
        self.error: BaseException | None = None

    def _batches(self) -> Iterator[pa.RecordBatch]:
        try:
            for start in range(0, len(self.events), self.chunk):
                yield from to_arrow(self.events[start : start + self.chunk], stored=self.stored).to_batches()
        except BaseException as exc:
            self.error = exc
            raise

    def reader(self) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(EVENT_SCHEMA, self._batches())

    def reraise(self, exc: duckdb.Error) -> None:
        if self.error is not None:
            raise self.error from exc


def _drop_events_key(con: duckdb.DuckDBPyConnection) -> None:
    """Move a keyed `events` table (from before the key was dropped) to an unkeyed one, atomically."""
    names = ", ".join(EVENT_SCHEMA.names)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"CREATE TABLE events_unkeyed ({_EVENTS_COLUMNS})")
        con.execute(f"INSERT INTO events_unkeyed SELECT {names} FROM events")
        con.execute("DROP TABLE events")
        con.execute("ALTER TABLE events_unkeyed RENAME TO events")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _naive_utc(value: datetime) -> datetime:
    # DuckDB would cast an aware value to TIMESTAMP through the session time zone, not UTC.
    return value if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)


def _aware_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC)


class DuckDBStore:
    """Events and reports in one DuckDB file; every open holds an exclusive lock on `<path>.lock`."""

    def __init__(self, path: Path, *, lock_timeout: float = 120.0) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.lock_timeout = lock_timeout

    @contextmanager
    def _locked(self) -> Iterator[None]:
        # DuckDB lets one process open the file at a time, readers included, so all openers queue here.
        # Not re-entrant: a nested connect() in the same process waits for itself and times out.
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + self.lock_timeout
            delay = 0.002
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise StoreLockTimeout(
                            f"Could not lock {self.lock_path} within {self.lock_timeout:g} s: another "
                            f"process is still using the DuckDB file {self.path}."
                        ) from None
                    time.sleep(delay * random.uniform(0.5, 1.5))
                    delay = min(delay * 2, 0.05)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    def _create(self) -> None:
        """Create the file beside its path and rename it into place, whole, once its schema is on disk.

        DuckDB writes a new file's headers one by one; a full disk between them leaves a file that no open can
        read ever after. Built beside, a failed creation leaves nothing at the path and the next open tries again.
        """
        partial = self.path.with_name(f".{self.path.name}.creating")
        for leftover in (partial, _wal(partial)):
            leftover.unlink(missing_ok=True)
        try:
            con = duckdb.connect(str(partial))
            try:
                con.execute(_EVENTS_DDL)
                con.execute("CHECKPOINT")  # the table into the file itself, not a WAL left behind by the rename
            finally:
                con.close()
            fd = os.open(partial, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(partial, self.path)
            fsync_dir(self.path.parent)
        except BaseException:
            for leftover in (partial, _wal(partial)):
                leftover.unlink(missing_ok=True)
            raise

    def _ensure_file(self) -> None:
        """Create the file if it is missing; move aside one whose creation never finished (an older flowhook's)."""
        if self.path.exists():
            if not _is_unfinished(self.path):
                return
            aside = self.path.with_name(f"{self.path.name}.unfinished-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}")
            os.replace(self.path, aside)
            logger.warning(
                "%s was a DuckDB file whose creation never finished (%d bytes, no headers, so no data); "
                "moved it to %s and created the store again",
                self.path,
                aside.stat().st_size,
                aside,
            )
        self._create()

    @contextmanager
    def connect(self, *, reports: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """An open connection with the schema in place, held under the file lock until exit.

        `reports` also makes sure of the report tables and the views (about 10 ms, so the event
        writes, which never touch them, skip it).
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked():
            self._ensure_file()
            # No replacement scans: a query naming `data` or `reports` must mean the table, not a Python variable.
            con = duckdb.connect(str(self.path), config={"python_enable_replacements": False})
            try:
                con.execute(_EVENTS_DDL)
                con.execute(_EVENTS_ATTEMPTS)  # before the key check: a keyed file's rows move with the column
                keyed = con.execute(_KEYED_EVENTS).fetchone()
                if keyed and keyed[0]:
                    _drop_events_key(con)
                if reports:
                    _ensure_report_schema(con)
                yield con
            finally:
                con.close()  # before the lock is released, so the next opener finds the file free

    def write_events(self, events: Sequence[StoredEvent], *, stored: datetime | None = None) -> int:
        """Store events by id, one row per id; returns how many ids were new (a re-run stores 0).

        The first *ok* copy of an id wins: an id stored ok is skipped, an id stored failed is replaced by the
        incoming copy (a retry, a replay or a redelivery processed it again), ok or failed. Within `events`,
        an id's first ok copy is kept, else its last. `stored` stamps every row's `stored` time (the write's
        own), instead of each event's.
        """
        if not events:
            return 0
        unique, ids = _one_by_id(events)
        names = ", ".join(EVENT_SCHEMA.names)
        with self.connect() as con:
            # Exact without a key because every writer holds the lock: nobody writes between check and write.
            known = _stored_ids(con, ids)
            replaced = _failed_ids(con, known) if known else set()
            new = [event for event in unique if event.id not in known or event.id in replaced] if known else unique
            if not new:
                return 0
            stream = _ArrowStream(new, stored=stored)
            con.register("incoming_events", stream.reader())
            try:
                if replaced:  # the failed rows go and their new copies come in one transaction
                    con.begin()
                    _delete_failed(con, replaced)
                row = con.execute(f"INSERT INTO events ({names}) SELECT {names} FROM incoming_events").fetchone()
                if replaced:
                    con.commit()
            except BaseException as exc:
                if replaced:  # the deleted rows come back (closing the connection would discard it too)
                    with suppress(duckdb.Error):
                        con.rollback()
                if isinstance(exc, duckdb.Error):
                    stream.reraise(exc)
                raise
            finally:
                con.unregister("incoming_events")
        return (int(row[0]) if row else 0) - len(replaced)

    def count_events(self, *, event_type: str | None = None) -> int:
        """How many events are stored, of one type or of all."""
        if event_type is None:
            rows = self.query("SELECT count(*) FROM events")
        else:
            rows = self.query("SELECT count(*) FROM events WHERE type = ?", [event_type])
        return int(rows[0][0])

    def event_counts(self) -> dict[str, int]:
        """Stored events per type."""
        rows = self.query("SELECT type, count(*) FROM events GROUP BY type ORDER BY type")
        return {event_type: int(n) for event_type, n in rows}

    def latest_heartbeat(
        self, *, event_type: str = "scheduled_tick", source: str = "schedule"
    ) -> tuple[datetime, datetime] | None:
        """(occurred, stored) of the most recently stored event of the type from the source (the scheduled
        heartbeat by default), as aware UTC times; None if there is none. Failed ones count: they got here."""
        rows = self.query(
            "SELECT occurred, stored FROM events WHERE type = ? AND source = ? AND stored IS NOT NULL"
            " ORDER BY stored DESC LIMIT 1",
            [event_type, source],
        )
        return (_aware_utc(rows[0][0]), _aware_utc(rows[0][1])) if rows else None

    def dead_letters(
        self,
        *,
        event_type: str | None = None,
        ids: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[DeadLetter]:
        """The failed events, oldest failure first: of one type, with these ids, and/or stored (failed) in
        [since, until); each filter given narrows the choice."""
        where: list[str] = ["status = 'failed'"]
        params: list[Any] = []
        if event_type is not None:
            where.append("type = ?")
            params.append(event_type)
        if ids is not None:
            where.append("id IN (SELECT id FROM wanted_ids)")  # a table: a long list parameter is slow
        if since is not None:
            where.append("stored >= ?")
            params.append(_naive_utc(since))
        if until is not None:
            where.append("stored < ?")
            params.append(_naive_utc(until))
        with self.connect() as con:
            con.register("wanted_ids", pa.table({"id": pa.array(list(ids or ()), type=pa.string())}))
            rows = con.execute(
                "SELECT id, type, source, occurred, received, data, error, attempts, stored, batch_id FROM events "
                f"WHERE {' AND '.join(where)} ORDER BY stored, id",
                params,
            ).fetchall()
        return [
            DeadLetter(
                event=Event(id=i, type=t, source=s, occurred=o, received=r, data=orjson.loads(d)),
                error=error,
                attempts=attempts or 1,
                stored=None if at is None else _aware_utc(at),
                batch_id=batch_id,
            )
            for i, t, s, o, r, d, error, attempts, at, batch_id in rows
        ]

    def duplicate_ids(self) -> int:
        """How many ids occur more than once; writes skip stored ids, so anything but 0 is a broken file."""
        rows = self.query("SELECT count(*) FROM (SELECT id FROM events GROUP BY id HAVING count(*) > 1)")
        return int(rows[0][0])

    def write_report(self, tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        """Upsert a report's rows into the report tables, in one transaction; absent columns become NULL."""
        with self.connect(reports=True) as con:
            con.begin()
            for table, rows in tables.items():
                if table not in REPORT_TABLES:
                    raise ValueError(f"unknown report table: {table}")
                if not rows:
                    continue
                names = [name for name, _ in REPORT_TABLES[table]]
                unknown = set().union(*rows) - set(names)
                if unknown:
                    raise ValueError(f"unknown {table} columns: {', '.join(sorted(unknown))}")
                # One INSERT OR REPLACE keeps the first of two rows with one key; an upsert means the last.
                keys = _REPORT_KEYS[table]
                rows = list(
                    {
                        tuple(_naive_utc(row[k]) if isinstance(row[k], datetime) else row[k] for k in keys): row
                        for row in rows
                    }.values()
                )
                values = {
                    name: [_naive_utc(v) if isinstance(v, datetime) else v for v in (row.get(name) for row in rows)]
                    for name in names
                }
                con.register("incoming_report", pa.table(values))
                try:
                    con.execute(f"INSERT OR REPLACE INTO {table} BY NAME SELECT * FROM incoming_report")
                finally:
                    con.unregister("incoming_report")
            con.commit()

    def query(self, sql: str, params: Sequence[Any] = (), *, reports: bool = False) -> list[tuple[Any, ...]]:
        """Run one ad-hoc statement under the lock; all its rows (TIMESTAMPs come back naive UTC)."""
        with self.connect(reports=reports) as con:
            return con.execute(sql, list(params)).fetchall()
