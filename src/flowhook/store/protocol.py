"""The surface every event store offers, whatever holds the data: what the pipeline, the CLI and reports call."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

import duckdb

from flowhook.events.builtin import SCHEDULED_TICK
from flowhook.names import SCHEDULE_SOURCE
from flowhook.store.records import DeadLetter, StoredEvent


class StoreLockTimeout(TimeoutError):
    """Another writer held the store's write lock for longer than `lock_timeout`."""


class EventStore(Protocol):
    """Events and reports, keyed by id: a redelivery is a no-op, a stored failure is replaced by a later copy."""

    def connect(self, *, reports: bool = False) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        """A DuckDB connection on the store with its schema in place (`reports`: the report tables and views)."""
        ...

    def read_only(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        """A connection on which no statement can change the store (for `flowhook sql`); held no longer than needed."""
        ...

    def write_events(
        self,
        events: Sequence[StoredEvent],
        *,
        stored: datetime | None = None,
        at_write: bool = False,
        on_commit: Callable[[], None] | None = None,
    ) -> int:
        """Store events, one row per id; how many ids were new (a re-run stores 0). `stored` stamps every row;
        `at_write` stamps them with the moment of the write; `on_commit` runs as soon as they are durable."""
        ...

    def write_report(self, tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        """Upsert a report's rows into the report tables, in one transaction."""
        ...

    def count_events(self, *, event_type: str | None = None) -> int:
        """How many events are stored, of one type or of all."""
        ...

    def event_counts(self) -> dict[str, int]:
        """Stored events per type."""
        ...

    def latest_heartbeat(
        self, *, event_type: str = SCHEDULED_TICK, source: str = SCHEDULE_SOURCE
    ) -> tuple[datetime, datetime] | None:
        """(occurred, stored) of the newest stored event of the type from the source, aware UTC."""
        ...

    def dead_letters(
        self,
        *,
        event_type: str | None = None,
        ids: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[DeadLetter]:
        """The failed events, oldest failure first, narrowed by each filter given."""
        ...

    def duplicate_ids(self) -> int:
        """How many ids occur more than once (anything but 0 is a broken store)."""
        ...

    def query(self, sql: str, params: Sequence[Any] = (), *, reports: bool = False) -> list[tuple[Any, ...]]:
        """Run one ad-hoc statement; all its rows (TIMESTAMPs come back naive UTC)."""
        ...
