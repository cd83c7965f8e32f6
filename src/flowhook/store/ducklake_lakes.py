"""The lakes this process has attached: one DuckDB instance with the extensions loaded, and per lake one attach
and one catalog session for the write lock, shared by every `DuckLakeStore` of it and made anew after a fork."""

from __future__ import annotations

import os
import threading
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import duckdb
from duckdb_extensions import import_extension

if TYPE_CHECKING:
    import psycopg


@dataclass(frozen=True, slots=True)
class S3Options:
    """How DuckDB reaches the bucket of an `s3://` data path (a DuckDB S3 secret); None leaves DuckDB's default."""

    endpoint: str | None = None
    """`host[:port]` of an S3-compatible service (MinIO, moto…); None for AWS."""
    region: str | None = None
    key_id: str | None = None
    secret: str | None = field(default=None, repr=False)
    url_style: Literal["vhost", "path"] | None = None
    use_ssl: bool = True


LakeKey = tuple[str, str, S3Options | None]
"""A lake by its catalog, its data path and how its bucket is reached."""


class Attachable(Protocol):
    """A store that can attach its lake (`DuckLakeStore`)."""

    @property
    def key(self) -> LakeKey: ...

    def attach(self, db: duckdb.DuckDBPyConnection) -> Lake: ...


class Lake:
    """One attached lake in this process: its DuckDB alias, the catalog session that holds the write lock, and
    which parts of the schema are known to be in place."""

    def __init__(self, alias: str, catalog: str) -> None:
        self.alias = alias
        self.catalog = catalog
        self.guard = threading.Lock()  # the process's writers take turns on the one session
        self.session: psycopg.Connection[Any] | None = None
        self.events_ready = False
        self.reports_ready = False
        self.results: dict[str, type] = {}  # the result models whose views are made sure of, by type

    def connected(self) -> psycopg.Connection[Any]:
        import psycopg

        if self.session is None or self.session.closed or self.session.broken:
            self.session = psycopg.connect(self.catalog, application_name="flowhook write lock")
        return self.session

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None


class Lakes:
    """The process's DuckDB instance, with the extensions loaded, and the lakes attached to it."""

    def __init__(self) -> None:
        self.mutex = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self.pid = os.getpid()
        self.db: duckdb.DuckDBPyConnection | None = None
        self.lakes: dict[LakeKey, Lake] = {}

    def cursor(self, store: Attachable) -> tuple[Lake, duckdb.DuckDBPyConnection]:
        """The store's lake, attached on first use, and a new connection to it (one per `connect`)."""
        with self.mutex:
            if self.pid != os.getpid():  # a forked child: the parent's DuckDB and sessions are not its own
                self._reset()
            if self.db is None:
                self.db = duckdb.connect(config=DUCKDB_CONFIG)
                # DuckLake never rewrites a data file, so their footers may stay parsed: each write's check of
                # stored ids reads every file, and at 600 files this halves its time.
                self.db.execute("SET GLOBAL parquet_metadata_cache = true")
                load_extensions(self.db, "ducklake", "postgres")
            lake = self.lakes.get(store.key)
            if lake is None:
                lake = self.lakes[store.key] = store.attach(self.db)
            con = self.db.cursor()
        con.execute(f"USE {lake.alias}")
        return lake, con

    def detach(self, key: LakeKey) -> None:
        with self.mutex:
            lake = self.lakes.pop(key, None)
            if lake is None or self.db is None:
                return
            with suppress(duckdb.Error):
                self.db.execute(f"DETACH {lake.alias}")
                self.db.execute(f"DROP SECRET IF EXISTS {lake.alias}_s3")
            lake.close()


LAKES = Lakes()
"""This process's lakes: every DuckLakeStore of one lake shares its attach and its lock session."""
DUCKDB_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "autoinstall_known_extensions": False,  # never download: the packages bring them
    "autoload_known_extensions": False,
    "python_enable_replacements": False,
}


def load_extensions(con: duckdb.DuckDBPyConnection, *names: str) -> None:
    """Load DuckDB extensions from their Python packages."""
    # `import_extension` INSTALLs from the package's own file (into DuckDB's extension folder, ~/.duckdb by
    # default; a no-op once there), never from the network; LOAD then finds it installed.
    for name in names:
        import_extension(name, con=con)
        con.load_extension(name)
