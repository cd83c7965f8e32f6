"""The samples in the store: finished minute files imported into tables, and a window's samples read back.

The gateway cannot write the DuckDB file (one process may open it, and the workers take turns), so its
files wait in `<spool>/samples/` until the sweeper (every minute) or a report imports them: in one
transaction, keyed so an import repeated after a crash changes nothing, and only then deleted.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from flowhook.sampling.log import read_records, sample_files
from flowhook.store import EventStore

logger = logging.getLogger(__name__)

TABLES = {"backlog": "backlog_samples", "ingress": "ingress_counts", "usage": "gateway_usage"}
"""The store's table for each kind of record."""

SETTLE_SECONDS = 5.0
"""A minute's file is finished this long after its minute ends (its writer flushes each second)."""


@dataclass
class Samples:
    """One window's records, by kind, as table rows (`second_start` an aware datetime)."""

    backlog: list[dict[str, Any]] = field(default_factory=list)
    ingress: list[dict[str, Any]] = field(default_factory=list)
    usage: list[dict[str, Any]] = field(default_factory=list)


def _row(record: dict[str, Any]) -> dict[str, Any]:
    """A record as a table row: its second as `second_start` (`at` is a keyword in DuckDB's SQL)."""
    row = {key: value for key, value in record.items() if key not in ("kind", "at")}
    row["second_start"] = datetime.fromtimestamp(record["at"], UTC)
    return row


def _rows(records: Iterable[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind, table row) of each record of a known kind with a time; anything else is skipped."""
    for record in records:
        kind = record.get("kind", "")
        if kind in TABLES and isinstance(record.get("at"), int | float):
            yield kind, _row(record)


def _by_table(records: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    tables: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for kind, row in _rows(records):
        tables[TABLES[kind]].append(row)
    return tables


def import_samples(db: EventStore, folder: Path, *, now: datetime | None = None, keep_days: float = 7.0) -> int:
    """Import every finished sample file into the store, delete the files, and drop rows older than
    `keep_days`; returns how many files were imported."""
    now = now or datetime.now(UTC)
    done = [path for minute, path in sample_files(folder) if minute + timedelta(seconds=60 + SETTLE_SECONDS) <= now]
    if done:
        records = [record for path in done for record in read_records(path)]
        tables = _by_table(records)
        if tables:
            db.write_report(tables)
        for path in done:
            path.unlink(missing_ok=True)
    with db.connect(reports=True) as con:
        cutoff = (now - timedelta(days=keep_days)).astimezone(UTC).replace(tzinfo=None)
        for table in TABLES.values():
            con.execute(f"DELETE FROM {table} WHERE second_start < ?", [cutoff])
    return len(done)


def window_samples(con: duckdb.DuckDBPyConnection, folder: Path | None, start: datetime, end: datetime) -> Samples:
    """The records in [start, end): imported ones from the store's tables (`con` has the report schema), the
    rest from the files still waiting."""
    naive = [moment.astimezone(UTC).replace(tzinfo=None) for moment in (start, end)]
    found = Samples()
    for kind, table in TABLES.items():
        cursor = con.execute(f"SELECT * FROM {table} WHERE second_start >= ? AND second_start < ?", naive)
        names = [d[0] for d in cursor.description or []]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        for row in rows:
            row["second_start"] = row["second_start"].replace(tzinfo=UTC)
        getattr(found, kind).extend(rows)
    if folder is not None:
        imported = {(kind, row["second_start"], row["writer"]) for kind in TABLES for row in getattr(found, kind)}
        for minute, path in sample_files(folder):
            if minute + timedelta(minutes=1) <= start or minute >= end:
                continue
            try:
                records = read_records(path)
            except FileNotFoundError:
                continue  # imported meanwhile: its rows were not in the tables when they were read
            for kind, row in _rows(records):
                at = row["second_start"]
                if start <= at < end and (kind, at, row["writer"]) not in imported:
                    getattr(found, kind).append(row)
    return found
