"""Storage: events and metric reports in one DuckDB file.

Contract: every open of the file, reads included, holds an exclusive `flock` on `<file>.lock`, because
DuckDB admits one process per file; waiting longer than `lock_timeout` raises `StoreLockTimeout`.
Writes are bulk (through Arrow) and keyed by event id, one row per id: storing an event again is a no-op,
except that a row stored `failed` is replaced by a later copy (a retry or a replay), ok or failed again.
Datetimes are aware UTC in Python and naive UTC `TIMESTAMP`s in the file.
"""

from flowhook.store.duckdb_store import (
    EVENT_SCHEMA,
    DeadLetter,
    DuckDBStore,
    StoredEvent,
    StoreLockTimeout,
    to_arrow,
)

__all__ = ["EVENT_SCHEMA", "DeadLetter", "DuckDBStore", "StoreLockTimeout", "StoredEvent", "to_arrow"]
