"""The DuckLake event store: the catalog in PostgreSQL, data files in a folder or on S3, shared by many writers.

Reads take no lock: each DuckLake transaction reads one snapshot. A write checks which ids are stored, then
inserts; DuckLake has no keys and two concurrent appends of one id would both commit, so every write (and
every schema change) holds a PostgreSQL advisory lock on the catalog database from the check to the commit,
taken through its own session: writers on every machine queue there, as local ones queue on DuckDBStore's file
lock. A commit that still conflicts (with compaction, say) is retried with bounded backoff. Every write leaves
a small file: `compaction.compact` merges them, and should run on a schedule.

Each process attaches a lake once (about 0.5 s: extensions, catalog) and keeps it (`ducklake_lakes`), so a store is
cheap to build.
The extensions come from their Python packages (`duckdb-extension-*`): DuckDB never downloads anything.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from flowhook.store.base import StoreBase, delete_failed, one_by_id, stored_ids, upsert_reports
from flowhook.store.ducklake_lakes import DUCKDB_CONFIG, LAKES, Lake, S3Options, load_extensions
from flowhook.store.protocol import StoreLockTimeout
from flowhook.store.records import EVENT_SCHEMA, StoredEvent, naive_utc, to_arrow
from flowhook.store.results import ensure_results_views, result_models
from flowhook.store.schema import EVENTS_DDL, EVENTS_HANDLED, STORE_KEYS, ensure_report_schema, report_rows

if TYPE_CHECKING:
    from flowhook.events import Catalog

logger = logging.getLogger(__name__)

T = TypeVar("T")

# One lock for every flowhook writer of the catalog database (a 64-bit key, stable across processes and hosts).
WRITE_LOCK_KEY = int.from_bytes(hashlib.blake2b(b"flowhook.store.events", digest_size=8).digest(), "big", signed=True)
# A write that meets a DuckLake commit conflict runs again, at most this often, after 0.05, 0.1, 0.2 … 2 s.
_ATTEMPTS = 8
_BACKOFF = 0.05
_MAX_BACKOFF = 2.0
# DuckLake's own words for a commit that lost to another one (after its internal retries, for the first).
_CONFLICTS = ("Exceeded the maximum retry count", "Transaction conflict", "could not serialize access")
_REMOTE = ("s3://", "s3a://", "s3n://", "gs://", "gcs://", "r2://", "http://", "https://")


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _is_conflict(exc: duckdb.Error) -> bool:
    return isinstance(exc, duckdb.TransactionException) or any(words in str(exc) for words in _CONFLICTS)


def _data_path(data_path: str | Path) -> str:
    """A folder as an absolute path, a URL as it is; either ending in `/` (DuckLake compares it with the
    catalog's on every attach)."""
    text = str(data_path)
    if not text.startswith(_REMOTE):
        text = str(Path(text).expanduser().resolve())
    return text if text.endswith("/") else text + "/"


def retry_conflicts(work: Callable[[], T]) -> T:
    """`work()`, run again (a bounded number of times, backing off) while DuckLake's commit conflicts."""
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            return work()
        except duckdb.Error as exc:
            if attempt == _ATTEMPTS or not _is_conflict(exc):
                raise
            delay = min(_BACKOFF * 2 ** (attempt - 1), _MAX_BACKOFF) * random.uniform(0.5, 1.5)
            logger.warning(
                "DuckLake commit conflict (try %d of %d), again in %.2f s: %s", attempt, _ATTEMPTS, delay, exc
            )
            time.sleep(delay)
    raise AssertionError("unreachable")


@contextmanager
def _transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    con.begin()
    try:
        yield
    except BaseException:
        with suppress(duckdb.Error):
            con.rollback()
        raise
    con.commit()


class DuckLakeStore(StoreBase):
    """Events and reports in a DuckLake: catalog in PostgreSQL (`catalog`, a libpq connection string or
    `postgresql://` URL), data files under `data_path` (a folder every writer sees, or `s3://bucket/prefix/`).
    With an `event_catalog`, its types' typed `results_<type>` views are made sure of with the report views."""

    def __init__(
        self,
        catalog: str,
        data_path: str | Path,
        *,
        s3: S3Options | None = None,
        lock_timeout: float = 120.0,
        event_catalog: Catalog | None = None,
    ) -> None:
        self.catalog = catalog
        self.data_path = _data_path(data_path)
        self.s3 = s3
        self.lock_timeout = lock_timeout
        self.result_models = result_models(event_catalog)
        self.key = (catalog, self.data_path, s3)
        digest = hashlib.blake2b(repr(self.key).encode(), digest_size=6).hexdigest()
        self.alias = f"lake_{digest}"

    def __repr__(self) -> str:  # the catalog string may hold a password
        return f"DuckLakeStore(data_path={self.data_path!r})"

    def attach(self, db: duckdb.DuckDBPyConnection) -> Lake:
        """Attach the lake to the process's DuckDB, creating its catalog tables if the database has none yet."""
        self._reach_data(db)
        lake = Lake(self.alias, self.catalog)
        try:
            with self._locked(lake):  # two first attaches would both create the catalog tables
                db.execute(self._attach_sql())
        except BaseException:
            lake.close()
            raise
        return lake

    def _reach_data(self, db: duckdb.DuckDBPyConnection) -> None:
        if self.data_path.startswith(_REMOTE):
            load_extensions(db, "httpfs")
            if self.s3 is not None and self.s3 != S3Options():  # none given: DuckDB's own defaults
                db.execute(f"CREATE OR REPLACE SECRET {self.alias}_s3 ({self._s3_secret()})")

    def _attach_sql(self, *, read_only: bool = False) -> str:
        options = f"DATA_PATH {_literal(self.data_path)}" + (", READ_ONLY" if read_only else "")
        return f"ATTACH {_literal('ducklake:postgres:' + self.catalog)} AS {self.alias} ({options})"

    @contextmanager
    def read_only(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection that cannot change the lake: a DuckDB of its own with the lake attached READ_ONLY (about
        0.5 s), closed at exit. The schema is put in place first (once per process), as `connect` does."""
        with self._open(reports=True):
            pass
        db = duckdb.connect(config=DUCKDB_CONFIG)
        try:
            load_extensions(db, "ducklake", "postgres")
            self._reach_data(db)
            db.execute(self._attach_sql(read_only=True))
            db.execute(f"USE {self.alias}")
            yield db
        finally:
            db.close()

    def _s3_secret(self) -> str:
        s3 = self.s3
        assert s3 is not None
        options = {
            "ENDPOINT": s3.endpoint,
            "REGION": s3.region,
            "KEY_ID": s3.key_id,
            "SECRET": s3.secret,
            "URL_STYLE": s3.url_style,
        }
        given = [f"{name} {_literal(value)}" for name, value in options.items() if value is not None]
        return ", ".join(["TYPE s3", *given, f"USE_SSL {str(s3.use_ssl).lower()}", f"SCOPE {_literal(self.data_path)}"])

    def close(self) -> None:
        """Detach the lake from this process (every store of it here) and end its lock session."""
        LAKES.detach(self.key)

    @contextmanager
    def _locked(self, lake: Lake) -> Iterator[None]:
        """Hold the catalog database's advisory write lock (released at exit, or when this process dies)."""
        import psycopg

        began = time.monotonic()
        if not lake.guard.acquire(timeout=self.lock_timeout):
            raise self._timeout()
        try:
            for attempt in (1, 2):
                session = lake.connected()
                try:  # the session's transaction holds the lock: no work is done in it, it is rolled back at exit
                    left = max(self.lock_timeout - (time.monotonic() - began), 0.001)
                    session.execute("SELECT set_config('lock_timeout', %s, true)", [f"{round(left * 1000)}ms"])
                    session.execute("SELECT pg_advisory_xact_lock(%s)", [WRITE_LOCK_KEY])
                    break
                except psycopg.errors.LockNotAvailable:
                    session.rollback()
                    raise self._timeout() from None
                except psycopg.OperationalError:
                    lake.close()
                    if attempt == 2:
                        raise
                    # else it was a session the server had closed while idle: one new one
            try:
                yield
            finally:
                try:
                    session.rollback()
                except psycopg.Error:  # a broken session: closing it is what releases the lock now
                    lake.close()
        finally:
            lake.guard.release()

    def _timeout(self) -> StoreLockTimeout:
        return StoreLockTimeout(
            f"Could not take the DuckLake write lock (advisory lock {WRITE_LOCK_KEY} on the catalog database) "
            f"within {self.lock_timeout:g} s: another writer is still holding it."
        )

    @contextmanager
    def _open(self, *, reports: bool) -> Iterator[tuple[Lake, duckdb.DuckDBPyConnection]]:
        lake, con = LAKES.cursor(self)
        try:
            results = {name: model for name, model in self.result_models.items() if lake.results.get(name) is not model}
            if not lake.events_ready or (reports and (not lake.reports_ready or results)):
                # Once per process: creating tables and views races with other processes, so under the lock.
                with self._locked(lake), _transaction(con):
                    con.execute(EVENTS_DDL)
                    con.execute(EVENTS_HANDLED)
                    if reports:
                        ensure_report_schema(con, keyed=False)
                        ensure_results_views(con, results)
                lake.events_ready = True
                lake.reports_ready = lake.reports_ready or reports
                if reports:
                    lake.results.update(results)
            yield lake, con
        finally:
            con.close()

    @contextmanager
    def connect(self, *, reports: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection whose default catalog is the lake, with the schema in place; it holds no lock.

        `reports` also makes sure of the report tables and the views. Each process checks the schema once.
        Each statement commits on its own unless you begin a transaction; a write here skips the write lock.
        """
        with self._open(reports=reports) as (_, con):
            yield con

    def _exclusive(self, work: Callable[[duckdb.DuckDBPyConnection], T], *, reports: bool = False) -> T:
        """`work` in one DuckLake transaction under the write lock; run again if DuckLake's commit conflicts."""

        def locked() -> T:
            with self._open(reports=reports) as (lake, con), self._locked(lake), _transaction(con):
                return work(con)

        return retry_conflicts(locked)

    def write_events(
        self,
        events: Sequence[StoredEvent],
        *,
        stored: datetime | None = None,
        at_write: bool = False,
        on_commit: Callable[[], None] | None = None,
    ) -> int:
        """Store events by id, one row per id; returns how many ids were new (a re-run stores 0).

        As `DuckDBStore.write_events`: an id stored ok is skipped, one stored failed is replaced by the incoming
        copy; within `events` an id's first ok copy is kept, else its last. The rows are built before the lock
        is taken, so the lock is held for the check, the insert and the commit alone.
        """
        if not events:
            if on_commit is not None:
                on_commit()
            return 0
        unique, ids = one_by_id(events)
        incoming = to_arrow(unique, stored=stored)
        names = ", ".join(EVENT_SCHEMA.names)

        def write(con: duckdb.DuckDBPyConnection) -> int:
            known, replaced = stored_ids(con, ids)
            rows = incoming
            if at_write:  # the moment the write began, under the lock (a lake has no close checkpoint to wait out)
                stamp = pa.array([naive_utc(datetime.now(UTC))] * rows.num_rows, type=rows.schema.field("stored").type)
                rows = rows.set_column(rows.schema.get_field_index("stored"), "stored", stamp)
            if skipped := known - replaced:
                rows = incoming.filter(pc.invert(pc.is_in(incoming["id"], value_set=pa.array(list(skipped)))))
            if not rows.num_rows:
                return 0
            if replaced:  # the failed rows go and their new copies come in the one transaction
                delete_failed(con, replaced)
            con.register("incoming_events", rows)
            try:
                row = con.execute(f"INSERT INTO events ({names}) SELECT {names} FROM incoming_events").fetchone()
            finally:
                con.unregister("incoming_events")
            return (int(row[0]) if row else 0) - len(replaced)

        written = self._exclusive(write)
        if on_commit is not None:
            on_commit()
        return written

    def write_report(self, tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        """Upsert a report's rows into the report tables, in one transaction; absent columns become NULL."""
        prepared = report_rows(tables)
        self._exclusive(lambda con: upsert_reports(con, prepared, _merge), reports=True)


def _merge(table: str) -> str:
    # DuckLake has no keys, so no INSERT OR REPLACE: a MERGE on the key columns, under the write lock.
    keys = ", ".join(STORE_KEYS[table])
    return (
        f"MERGE INTO {table} USING incoming_report USING ({keys}) "
        "WHEN MATCHED THEN UPDATE BY NAME WHEN NOT MATCHED THEN INSERT BY NAME"
    )
