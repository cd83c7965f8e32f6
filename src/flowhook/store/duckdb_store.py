"""The DuckDB event store: one file, shared by many processes through a sidecar `flock`."""

from __future__ import annotations

import fcntl
import logging
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from flowhook.durable import fsync_dir, fsync_path
from flowhook.store.base import StoreBase, delete_failed, one_by_id, stored_ids, upsert_reports
from flowhook.store.protocol import StoreLockTimeout
from flowhook.store.records import EVENT_SCHEMA, DeadLetter, StoredEvent, naive_utc, to_arrow
from flowhook.store.results import ensure_results_views, result_models
from flowhook.store.schema import (
    EVENTS_COLUMNS,
    EVENTS_DDL,
    EVENTS_HANDLED,
    REPORT_TABLES,
    ensure_report_schema,
    report_rows,
    seconds_between,
)

if TYPE_CHECKING:
    from flowhook.events import Catalog

# Kept importable from here, where they were first defined.
__all__ = [
    "EVENT_SCHEMA",
    "REPORT_TABLES",
    "DeadLetter",
    "DuckDBStore",
    "StoreLockTimeout",
    "StoredEvent",
    "seconds_between",
    "to_arrow",
]

logger = logging.getLogger(__name__)


# A file from before retries lacks `attempts`; every row it holds had one handler call. A no-op (no write) once there.
_EVENTS_ATTEMPTS = "ALTER TABLE events ADD COLUMN IF NOT EXISTS attempts INTEGER DEFAULT 1"
# A file from before the key was dropped has one; its rows move to an unkeyed table, once, in one transaction.
_KEYED_EVENTS = """
SELECT count(*) FROM duckdb_constraints()
WHERE database_name = current_database() AND schema_name = 'main' AND table_name = 'events'
  AND constraint_type = 'PRIMARY KEY'
"""


# `flowhook sql`'s connection: besides the read-only open, no files (COPY TO, ATTACH), no extensions.
_READ_ONLY: dict[str, str | bool | int | float | list[str]] = {
    "python_enable_replacements": False,
    "enable_external_access": False,
}

# A write on one thread: its parts (the id check, the insert from a Python-built Arrow stream, the checkpoint on
# close) are too small to gain from a second, which costs a third more CPU per event in all (bench/worker_step.py).
# The setting lasts as long as the connection: reads opened afterwards run on every core again.
_WRITE_THREADS = "SET threads = 1"
_CHUNK = 10_000  # rows per streamed Arrow batch: small enough to overlap, large enough to amortise

# `data` and `result` handed to DuckDB as Arrow's JSON type, not text: DuckDB then takes them as JSON as they are,
# instead of parsing every value again to check it (a third of the insert). They are orjson's output, valid JSON.
_INSERT_SCHEMA = pa.schema(
    [field.with_type(pa.json_()) if field.name in ("data", "result") else field for field in EVENT_SCHEMA]
)


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


class _ArrowStream:
    """The events as Arrow record batches built on demand, so DuckDB stores one chunk while Python builds the next.

    Chunk by chunk, so a big write never holds all of its rows as Arrow at once (writes run on one DuckDB thread,
    `_WRITE_THREADS`: the two no longer overlap). An error raised while building (e.g. data that is not JSON)
    reaches DuckDB as a generic one: `reraise` puts the original back.
    """

    def __init__(self, events: Sequence[StoredEvent], *, stored: datetime | None, chunk: int = _CHUNK) -> None:
        self.events = events
        self.stored = stored
        self.chunk = chunk
        self.error: BaseException | None = None

    def _batches(self) -> Iterator[pa.RecordBatch]:
        try:
            for start in range(0, len(self.events), self.chunk):
                table = to_arrow(self.events[start : start + self.chunk], stored=self.stored)
                yield from table.cast(_INSERT_SCHEMA).to_batches()
        except BaseException as exc:
            self.error = exc
            raise

    def reader(self) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(_INSERT_SCHEMA, self._batches())

    def reraise(self, exc: duckdb.Error) -> None:
        if self.error is not None:
            raise self.error from exc


def _drop_events_key(con: duckdb.DuckDBPyConnection) -> None:
    """Move a keyed `events` table (from before the key was dropped) to an unkeyed one, atomically."""
    names = ", ".join(EVENT_SCHEMA.names)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"CREATE TABLE events_unkeyed ({EVENTS_COLUMNS})")
        con.execute(f"INSERT INTO events_unkeyed SELECT {names} FROM events")
        con.execute("DROP TABLE events")
        con.execute("ALTER TABLE events_unkeyed RENAME TO events")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


class DuckDBStore(StoreBase):
    """Events and reports in one DuckDB file; every open holds an exclusive lock on `<path>.lock`. With a
    `catalog`, the opens that make sure of the views also make sure of its types' typed `results_<type>` views."""

    def __init__(self, path: Path, *, lock_timeout: float = 120.0, catalog: Catalog | None = None) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.lock_timeout = lock_timeout
        self.result_models = result_models(catalog)

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
                con.execute(EVENTS_DDL)
                con.execute("CHECKPOINT")  # the table into the file itself, not a WAL left behind by the rename
            finally:
                con.close()
            fsync_path(partial)
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

        `reports` also makes sure of the report tables and the views, the typed results views included (about
        10 ms, so the event writes, which never touch them, skip it).
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked():
            con = self._open(reports=reports)
            try:
                yield con
            finally:
                con.close()  # before the lock is released, so the next opener finds the file free

    def _open(self, *, reports: bool) -> duckdb.DuckDBPyConnection:
        """A read-write connection with the schema in place (the caller holds the lock)."""
        self._ensure_file()
        # No replacement scans: a query naming `data` or `reports` must mean the table, not a Python variable.
        con = duckdb.connect(str(self.path), config={"python_enable_replacements": False})
        try:
            con.execute(EVENTS_DDL)
            con.execute(_EVENTS_ATTEMPTS)  # before the key check: a keyed file's rows move with the column
            con.execute(EVENTS_HANDLED)
            keyed = con.execute(_KEYED_EVENTS).fetchone()
            if keyed and keyed[0]:
                _drop_events_key(con)
            if reports:
                ensure_report_schema(con)
                ensure_results_views(con, self.result_models)
        except BaseException:
            con.close()
            raise
        return con

    @contextmanager
    def read_only(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection that cannot change anything: the file opened read-only, with no access to other files,
        extensions or databases; held under the file lock until exit, like every open.

        The schema (report views included) is put in place first, so queries see the same names as ever.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked():
            self._open(reports=True).close()  # a no-op (no write) once the schema is there
            con = duckdb.connect(str(self.path), read_only=True, config=_READ_ONLY)
            try:
                yield con
            finally:
                con.close()

    def write_events(
        self,
        events: Sequence[StoredEvent],
        *,
        stored: datetime | None = None,
        at_write: bool = False,
        on_commit: Callable[[], None] | None = None,
    ) -> int:
        """Store events by id, one row per id; returns how many ids were new (a re-run stores 0).

        The first *ok* copy of an id wins: an id stored ok is skipped, an id stored failed is replaced by the
        incoming copy (a retry, a replay or a redelivery processed it again), ok or failed. Within `events`,
        an id's first ok copy is kept, else its last. `stored` stamps every row's `stored` time (the write's
        own), instead of each event's; `at_write` stamps them with the moment just before the write commits, so an
        event counts as stored once it is (the wait for the lock and the insert count as time before storing, as
        the spool sees them: the batch leaves `claimed/` just after the commit). `on_commit` runs once the rows are
        durable (the commit's WAL is synced), before the connection closes: closing checkpoints the WAL into the
        file, ~20 ms that need not keep a stored batch in `claimed/`.
        """
        if not events:
            if on_commit is not None:
                on_commit()
            return 0
        unique, ids = one_by_id(events)
        names = ", ".join(EVENT_SCHEMA.names)
        with self.connect() as con:
            con.execute(_WRITE_THREADS)
            # Exact without a key because every writer holds the lock: nobody writes between check and write.
            known, replaced = stored_ids(con, ids)
            new = [event for event in unique if event.id not in known or event.id in replaced] if known else unique
            if not new:
                if on_commit is not None:
                    on_commit()
                return 0
            began = datetime.now(UTC)
            stream = _ArrowStream(new, stored=began if at_write else stored)
            transaction = bool(replaced) or at_write
            con.register("incoming_events", stream.reader())
            try:
                if transaction:
                    con.begin()
                if replaced:  # the failed rows go and their new copies come in one transaction
                    delete_failed(con, replaced)
                row = con.execute(f"INSERT INTO events ({names}) SELECT {names} FROM incoming_events").fetchone()
                if at_write:
                    # Stored is when the rows commit, not when their write began: the moment just before the commit.
                    # Only this write's rows carry `began` (a time taken under the lock, after every earlier write).
                    con.execute(
                        "UPDATE events SET stored = ? WHERE stored = ?",
                        [naive_utc(datetime.now(UTC)), naive_utc(began)],
                    )
                if transaction:
                    con.commit()
            except BaseException as exc:
                if transaction:  # the deleted rows come back (closing the connection would discard it too)
                    with suppress(duckdb.Error):
                        con.rollback()
                if isinstance(exc, duckdb.Error):
                    stream.reraise(exc)
                raise
            finally:
                con.unregister("incoming_events")
            if on_commit is not None:
                on_commit()
        return (int(row[0]) if row else 0) - len(replaced)

    def write_report(self, tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        """Upsert a report's rows into the report tables, in one transaction; absent columns become NULL."""
        prepared = report_rows(tables)
        with self.connect(reports=True) as con:
            con.begin()
            upsert_reports(
                con, prepared, lambda table: f"INSERT OR REPLACE INTO {table} BY NAME SELECT * FROM incoming_report"
            )
            con.commit()
