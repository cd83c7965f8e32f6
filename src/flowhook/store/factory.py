"""Choose the store by one setting: the local DuckDB file, or a DuckLake shared by writers on many machines."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from flowhook.events import load_catalog
from flowhook.store.config import StoreConfig, StoreKind
from flowhook.store.duckdb_store import DuckDBStore
from flowhook.store.ducklake_lakes import S3Options
from flowhook.store.ducklake_store import DuckLakeStore
from flowhook.store.protocol import EventStore

if TYPE_CHECKING:
    from flowhook.events import Catalog


def open_store(
    *,
    store: StoreKind = "duckdb",
    database: Path,
    lock_timeout: float = 120.0,
    ducklake_catalog: str | None = None,
    ducklake_data_path: str | Path | None = None,
    s3: S3Options | None = None,
    catalog: Catalog | None = None,
) -> EventStore:
    """The event store `store` names: `duckdb` is the file `database`; `ducklake` is the lake whose catalog is
    the PostgreSQL database `ducklake_catalog` (a connection string) and whose data files are under
    `ducklake_data_path` (a folder, or `s3://bucket/prefix/` reached with `s3`). `lock_timeout` bounds the wait
    for either one's write lock. With the event `catalog`, the store makes sure of a typed `results_<type>` view
    for each of its types with a result model."""
    if store == "duckdb":
        return DuckDBStore(database, lock_timeout=lock_timeout, catalog=catalog)
    if store == "ducklake":
        if not ducklake_catalog:
            raise ValueError("the ducklake store needs a catalog: a PostgreSQL connection string")
        if ducklake_data_path is None:
            raise ValueError("the ducklake store needs a data path: a folder or an s3:// URL")
        return DuckLakeStore(
            ducklake_catalog, ducklake_data_path, s3=s3, lock_timeout=lock_timeout, event_catalog=catalog
        )
    raise ValueError(f"unknown store {store!r}: 'duckdb' or 'ducklake'")


def store_from_config(config: StoreConfig) -> EventStore:
    """The store `config` names (`Settings.store_config`: `FLOWHOOK_STORE`, `FLOWHOOK_DUCKLAKE_*`), with the typed
    results views of the event catalog its `event_modules` name: what flows, tasks and the CLI use."""
    return open_store(
        store=config.kind,
        database=config.database,
        lock_timeout=config.lock_timeout_seconds,
        ducklake_catalog=config.ducklake_catalog,
        ducklake_data_path=config.ducklake_data_path,
        s3=config.s3,
        catalog=load_catalog(list(config.event_modules)),
    )


def store_exists(config: StoreConfig) -> bool:
    """Whether anything can have been stored yet: the DuckDB file exists (a DuckLake is made on first use)."""
    return config.kind != "duckdb" or config.database.exists()
