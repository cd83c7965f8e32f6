"""Storage: events and metric reports, keyed by event id, behind one `EventStore` surface and two backends.

Contract: writes are bulk (through Arrow) and keyed by event id, one row per id: storing an event again is a
no-op, except that a row stored `failed` is replaced by a later copy (a retry or a replay), ok or failed again.
That is exact without a key because every writer holds the store's write lock from its check to its commit.
Datetimes are aware UTC in Python and naive UTC `TIMESTAMP`s in storage. `open_store` picks the backend:

- `DuckDBStore`: one DuckDB file. Every open of the file, reads included, holds an exclusive `flock` on
  `<file>.lock`, because DuckDB admits one process per file; waiting longer than `lock_timeout` raises
  `StoreLockTimeout`.
- `DuckLakeStore`: a DuckLake with its catalog in PostgreSQL and data files in a folder or on S3, shared by
  writers on many machines. Reads take no lock; writes hold a PostgreSQL advisory lock on the catalog
  database (`StoreLockTimeout` past `lock_timeout`) and are retried on DuckLake commit conflicts.
  `compact` merges the small files writes leave and expires old snapshots (run it on a schedule).
"""

from flowhook.store.compaction import Compaction, compact
from flowhook.store.config import StoreConfig, StoreKind
from flowhook.store.duckdb_store import DuckDBStore
from flowhook.store.ducklake_lakes import S3Options
from flowhook.store.ducklake_store import DuckLakeStore
from flowhook.store.factory import open_store, store_exists, store_from_config
from flowhook.store.protocol import EventStore, StoreLockTimeout
from flowhook.store.records import EVENT_SCHEMA, DeadLetter, StoredEvent, to_arrow

__all__ = [
    "EVENT_SCHEMA",
    "Compaction",
    "DeadLetter",
    "DuckDBStore",
    "DuckLakeStore",
    "EventStore",
    "S3Options",
    "StoreConfig",
    "StoreKind",
    "StoreLockTimeout",
    "StoredEvent",
    "compact",
    "open_store",
    "store_exists",
    "store_from_config",
    "to_arrow",
]
