"""The store backends the store tests run against: a DuckDB file, and a DuckLake on the real PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import psycopg
from duckdb_extensions import import_extension
from psycopg.conninfo import make_conninfo

from flowhook.store import DuckLakeStore, EventStore, StoreKind, open_store

POSTGRES = os.environ.get("FLOWHOOK_TEST_POSTGRES", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
"""A PostgreSQL role that may create databases: each DuckLake test gets one of its own, dropped afterwards."""


@dataclass(frozen=True)
class StoreSpec:
    """Where a test's store lives; picklable, so a spawned process opens the same store."""

    kind: StoreKind
    path: Path
    """The DuckDB file, or the DuckLake's data folder."""
    catalog: str | None = None

    def open(self, **options: Any) -> EventStore:
        return open_store(
            store=self.kind, database=self.path, ducklake_catalog=self.catalog, ducklake_data_path=self.path, **options
        )

    def reopen(self) -> EventStore:
        """The store opened anew: a DuckLake is detached from this process first, so it is attached again."""
        store = self.open()
        if isinstance(store, DuckLakeStore):
            store.close()
        return store


def postgres_unreachable() -> str | None:
    """Why the DuckLake tests cannot run here, or None when PostgreSQL answers."""
    try:
        psycopg.connect(POSTGRES, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        return f"PostgreSQL is not reachable at {POSTGRES!r} (FLOWHOOK_TEST_POSTGRES): {exc}".strip()
    return None


def _admin(sql: str, *params: Any, dbname: str | None = None) -> None:
    conninfo = POSTGRES if dbname is None else make_conninfo(POSTGRES, dbname=dbname)
    with psycopg.connect(conninfo, autocommit=True) as con:
        con.execute(sql, params)


@contextmanager
def lake_template(data_path: Path) -> Iterator[str]:
    """A database holding an empty DuckLake catalog, to clone: cloning it and attaching the clone is about twice
    as quick as attaching an empty database, where DuckLake creates its catalog tables one by one."""
    name = f"flowhook_test_template_{uuid.uuid4().hex[:8]}"
    _admin(f"CREATE DATABASE {name}")
    try:
        con = duckdb.connect(config={"autoinstall_known_extensions": False})
        try:
            for extension in ("ducklake", "postgres"):
                import_extension(extension, con=con)
            con.execute(
                f"ATTACH 'ducklake:postgres:{make_conninfo(POSTGRES, dbname=name)}' AS template "
                f"(DATA_PATH '{data_path}/')"
            )
        finally:
            con.close()  # and with it every session on the template, which a clone needs
        yield name
    finally:
        _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextmanager
def fresh_lake(data_path: Path | str, *, template: str) -> Iterator[StoreSpec]:
    """A DuckLake whose catalog is a new clone of `template`, its data under `data_path` (a folder, or an s3://
    URL: then open it yourself, `StoreSpec.path` cannot hold one); the database is dropped (and the lake
    detached from this process) at exit."""
    name = f"flowhook_test_{uuid.uuid4().hex[:12]}"
    _admin(f"CREATE DATABASE {name} TEMPLATE {template}")
    spec = StoreSpec("ducklake", Path(data_path), catalog=make_conninfo(POSTGRES, dbname=name))
    try:
        # The clone's catalog names the template's data path; DuckLake refuses to attach it elsewhere.
        data = str(data_path) if str(data_path).startswith("s3://") else str(Path(data_path).resolve())
        _admin("UPDATE ducklake_metadata SET value = %s WHERE key = 'data_path'", data.rstrip("/") + "/", dbname=name)
        yield spec
    finally:
        assert spec.catalog is not None
        DuckLakeStore(spec.catalog, data_path).close()
        _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
