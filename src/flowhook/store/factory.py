"""Choose the store by one setting: the local DuckDB file, or a DuckLake shared by writers on many machines."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from flowhook.events import load_catalog
from flowhook.store.duckdb_store import DuckDBStore
from flowhook.store.ducklake_lakes import S3Options
from flowhook.store.ducklake_store import DuckLakeStore
from flowhook.store.protocol import EventStore

if TYPE_CHECKING:
    from flowhook.events import Catalog
    from flowhook.settings import Settings

StoreKind = Literal["duckdb", "ducklake"]


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


def store_from_settings(settings: Settings) -> EventStore:
    """The store the settings name (`FLOWHOOK_STORE`, `FLOWHOOK_DUCKLAKE_*`), with the typed results views of the
    event catalog `FLOWHOOK_EVENT_MODULES` names: what flows, tasks and the CLI use."""
    secret = settings.ducklake_s3_secret
    catalog = settings.ducklake_catalog
    return open_store(
        store=settings.store,
        database=settings.database,
        lock_timeout=settings.lock_timeout_seconds,
        ducklake_catalog=catalog.get_secret_value() if catalog else None,
        ducklake_data_path=settings.ducklake_data_path or settings.data_dir / "lake",
        s3=S3Options(
            endpoint=settings.ducklake_s3_endpoint,
            region=settings.ducklake_s3_region,
            key_id=settings.ducklake_s3_key_id,
            secret=secret.get_secret_value() if secret else None,
            url_style=settings.ducklake_s3_url_style,
            use_ssl=settings.ducklake_s3_use_ssl,
        ),
        catalog=load_catalog(settings.event_modules),
    )


def store_exists(settings: Settings) -> bool:
    """Whether anything can have been stored yet: the DuckDB file exists (a DuckLake is made on first use)."""
    return settings.store != "duckdb" or settings.database.exists()
