"""What both stores share: the reads, over `connect()`, and the steps of a keyed write, run under the write lock."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from flowhook.events import Event
from flowhook.events.builtin import SCHEDULED_TICK
from flowhook.names import SCHEDULE_SOURCE
from flowhook.store.records import DeadLetter, StoredEvent, aware_utc, naive_utc


class StoreBase(ABC):
    """The read side of a store, written once against `connect()`; a backend adds the writes."""

    @abstractmethod
    def connect(self, *, reports: bool = False) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        """An open connection with the schema in place (the report tables and views too with `reports`)."""

    def count_events(self, *, event_type: str | None = None) -> int:
        """How many events are stored, of one type or of all."""
        if event_type is None:
            rows = self.query("SELECT count(*) FROM events")
        else:
            rows = self.query("SELECT count(*) FROM events WHERE type = ?", [event_type])
        return int(rows[0][0])

    def event_counts(self) -> dict[str, int]:
        """Stored events per type."""
        rows = self.query("SELECT type, count(*) FROM events GROUP BY type ORDER BY type")
        return {event_type: int(n) for event_type, n in rows}

    def latest_heartbeat(
        self, *, event_type: str = SCHEDULED_TICK, source: str = SCHEDULE_SOURCE
    ) -> tuple[datetime, datetime] | None:
        """(occurred, stored) of the most recently stored event of the type from the source (the scheduled
        heartbeat by default), as aware UTC times; None if there is none. Failed ones count: they got here."""
        rows = self.query(
            "SELECT occurred, stored FROM events WHERE type = ? AND source = ? AND stored IS NOT NULL"
            " ORDER BY stored DESC LIMIT 1",
            [event_type, source],
        )
        return (aware_utc(rows[0][0]), aware_utc(rows[0][1])) if rows else None

    def dead_letters(
        self,
        *,
        event_type: str | None = None,
        ids: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[DeadLetter]:
        """The failed events, oldest failure first: of one type, with these ids, and/or stored (failed) in
        [since, until); each filter given narrows the choice."""
        where: list[str] = ["status = 'failed'"]
        params: list[Any] = []
        if event_type is not None:
            where.append("type = ?")
            params.append(event_type)
        if ids is not None:
            where.append("id IN (SELECT id FROM wanted_ids)")  # a table: a long list parameter is slow
        if since is not None:
            where.append("stored >= ?")
            params.append(naive_utc(since))
        if until is not None:
            where.append("stored < ?")
            params.append(naive_utc(until))
        with self.connect() as con:
            con.register("wanted_ids", pa.table({"id": pa.array(list(ids or ()), type=pa.string())}))
            rows = con.execute(
                "SELECT id, type, source, occurred, received, data, error, attempts, stored, batch_id FROM events "
                f"WHERE {' AND '.join(where)} ORDER BY stored, id",
                params,
            ).fetchall()
        return [
            DeadLetter(
                event=Event(id=i, type=t, source=s, occurred=o, received=r, data=orjson.loads(d)),
                error=error,
                attempts=attempts or 1,
                stored=None if at is None else aware_utc(at),
                batch_id=batch_id,
            )
            for i, t, s, o, r, d, error, attempts, at, batch_id in rows
        ]

    def duplicate_ids(self) -> int:
        """How many ids occur more than once; writes skip stored ids, so anything but 0 is a broken store."""
        rows = self.query("SELECT count(*) FROM (SELECT id FROM events GROUP BY id HAVING count(*) > 1)")
        return int(rows[0][0])

    def query(self, sql: str, params: Sequence[Any] = (), *, reports: bool = False) -> list[tuple[Any, ...]]:
        """Run one ad-hoc statement; all its rows (TIMESTAMPs come back naive UTC)."""
        with self.connect(reports=reports) as con:
            return con.execute(sql, list(params)).fetchall()


def one_by_id(events: Sequence[StoredEvent]) -> tuple[Sequence[StoredEvent], list[str]]:
    """The events without in-batch repeats of an id, and their ids: an id's first ok copy wins, else its last."""
    ids = [event.id for event in events]
    if len(set(ids)) == len(ids):
        return events, ids
    chosen: dict[str, StoredEvent] = {}
    for event in events:
        kept = chosen.get(event.id)
        if kept is None or kept.status != "ok":
            chosen[event.id] = event
    return list(chosen.values()), list(chosen)


def stored_ids(con: duckdb.DuckDBPyConnection, ids: list[str]) -> tuple[set[str], set[str]]:
    """Which of `ids` the events table already holds, and which of those it holds only as failed (a retry
    or a replay replaces those rows). Exact only under the store's write lock: nobody writes in between."""
    known = _known_ids(con, ids)
    return known, (_failed_ids(con, known) if known else set())


def _known_ids(con: duckdb.DuckDBPyConnection, ids: list[str]) -> set[str]:
    # Usually none are: then this is one cheap join.
    con.register("incoming_ids", pa.table({"id": pa.array(ids, type=pa.string())}))
    try:
        rows = con.execute("SELECT id FROM incoming_ids SEMI JOIN events USING (id)").fetchall()
    finally:
        con.unregister("incoming_ids")
    return {event_id for (event_id,) in rows}


def _failed_ids(con: duckdb.DuckDBPyConnection, known: set[str]) -> set[str]:
    # A registered Arrow table, not `IN (SELECT unnest(?))`: a list parameter of 100k ids takes seconds.
    con.register("known_ids", pa.table({"id": pa.array(list(known), type=pa.string())}))
    try:
        rows = con.execute(
            "SELECT id FROM events SEMI JOIN known_ids USING (id) GROUP BY id HAVING bool_and(status = 'failed')"
        )
        return {event_id for (event_id,) in rows.fetchall()}
    finally:
        con.unregister("known_ids")


def delete_failed(con: duckdb.DuckDBPyConnection, ids: set[str]) -> None:
    """Delete the failed rows of `ids` (inside the caller's transaction)."""
    con.register("replaced_ids", pa.table({"id": pa.array(list(ids), type=pa.string())}))
    try:
        con.execute("DELETE FROM events WHERE status = 'failed' AND id IN (SELECT id FROM replaced_ids)")
    finally:
        con.unregister("replaced_ids")


def upsert_reports(
    con: duckdb.DuckDBPyConnection, prepared: list[tuple[str, pa.Table]], upsert: Callable[[str], str]
) -> None:
    """Write each prepared report table with the backend's upsert of `incoming_report` into it."""
    for table, rows in prepared:
        con.register("incoming_report", rows)
        try:
            con.execute(upsert(table))
        finally:
            con.unregister("incoming_report")
