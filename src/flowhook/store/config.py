"""The store's own configuration: which backend, where it lives, how long to wait for its write lock.

The app's settings build it (`Settings.store_config`, from `FLOWHOOK_STORE`, `FLOWHOOK_DUCKDB_PATH`,
`FLOWHOOK_DUCKLAKE_*`, ...); the store reads nothing else of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from flowhook.store.ducklake_lakes import S3Options

StoreKind = Literal["duckdb", "ducklake"]


@dataclass(frozen=True)
class StoreConfig:
    """Where events and reports are stored, and the event modules whose result models get typed views."""

    database: Path
    """The DuckDB file (`kind="duckdb"`)."""
    kind: StoreKind = "duckdb"
    """`duckdb`, the file `database` (one machine); `ducklake`, a lake shared by writers on many machines."""
    lock_timeout_seconds: float = 120.0
    """How long to wait for the store's write lock (the DuckDB file's, or DuckLake's)."""
    ducklake_catalog: str | None = field(default=None, repr=False)
    """The DuckLake catalog: a PostgreSQL connection string (kept out of reprs: it may hold a password)."""
    ducklake_data_path: str | Path | None = None
    """Where DuckLake writes Parquet files: a folder every writer sees, or `s3://bucket/prefix/`."""
    s3: S3Options | None = None
    """How DuckDB reaches the bucket of an `s3://` data path."""
    event_modules: tuple[str, ...] = ()
    """Modules that register user-defined event types (their result models become `results_<type>` views)."""
