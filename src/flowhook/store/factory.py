"""Choose the store by one setting: the local DuckDB file, or a DuckLake shared by writers on many machines."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from flowhook.store.duckdb_store import DuckDBStore
from flowhook.store.ducklake_store import DuckLakeStore, S3Options
from flowhook.store.protocol import EventStore

StoreKind = Literal["duckdb", "ducklake"]


def open_store(
    *,
    store: StoreKind = "duckdb",
    database: Path,
    lock_timeout: float = 120.0,
    ducklake_catalog: str | None = None,
    ducklake_data_path: str | Path | None = None,
    s3: S3Options | None = None,
) -> EventStore:
    """The event store `store` names: `duckdb` is the file `database`; `ducklake` is the lake whose catalog is
    the PostgreSQL database `ducklake_catalog` (a connection string) and whose data files are under
    `ducklake_data_path` (a folder, or `s3://bucket/prefix/` reached with `s3`). `lock_timeout` bounds the wait
    for either one's write lock."""
    if store == "duckdb":
        return DuckDBStore(database, lock_timeout=lock_timeout)
    if store == "ducklake":
        if not ducklake_catalog:
            raise ValueError("the ducklake store needs a catalog: a PostgreSQL connection string")
        if ducklake_data_path is None:
            raise ValueError("the ducklake store needs a data path: a folder or an s3:// URL")
        return DuckLakeStore(ducklake_catalog, ducklake_data_path, s3=s3, lock_timeout=lock_timeout)
    raise ValueError(f"unknown store {store!r}: 'duckdb' or 'ducklake'")
