"""DuckLake housekeeping, for a scheduled run: merge the small files writes leave, expire old snapshots."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flowhook.store.ducklake_store import DuckLakeStore, retry_conflicts

# Files that no snapshot knows (a writer died mid-commit) are deleted only once this old: a write in progress
# owns its files, unknown to any snapshot until it commits.
_ORPHAN_AGE = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Compaction:
    """What one `compact` did."""

    rows_flushed: int
    """Rows moved from the catalog (DuckLake inlines small inserts there) into data files."""
    files_merged: int
    """Small adjacent data files merged into larger ones."""
    files_rewritten: int
    """Data files rewritten without their deleted rows (failed rows that a later copy replaced)."""
    snapshots_expired: int
    files_deleted: int
    """Files deleted from the data path: those only expired snapshots used, and orphans of failed writes."""


def compact(store: DuckLakeStore, *, keep: timedelta) -> Compaction:
    """Merge the lake's small data files, expire snapshots older than `keep` and delete the files only they used.

    Every write adds a file (or, up to 10 rows, rows inlined in the catalog until flushed here), and every write's
    check of stored ids reads them all: with 600 small files a 1,000-row write took 132 ms, 52 ms once compacted
    (measured without DuckDB's cache of Parquet footers, which the store turns on: it makes the 132 ms about 60).
    So run this often while writes go on. It takes no write lock: a step that conflicts with a write is run
    again. Time travel reaches back `keep`, no further.
    """
    lake = f"'{store.alias}'"

    def call(sql: str, column: int | None = None, *, older_than: timedelta | None = None) -> int:
        """Run one maintenance call: the sum of a column of its rows, or how many rows it returned."""

        def run() -> int:
            params = [] if older_than is None else [datetime.now(UTC) - older_than]
            with store.connect() as con:
                rows = con.execute(sql, params).fetchall()
            return len(rows) if column is None else sum(int(row[column]) for row in rows)

        return retry_conflicts(run)

    older = "older_than => ?::TIMESTAMPTZ"
    return Compaction(
        rows_flushed=call(f"CALL ducklake_flush_inlined_data({lake})", 2),
        files_merged=call(f"CALL ducklake_merge_adjacent_files({lake})", 2),
        files_rewritten=call(f"CALL ducklake_rewrite_data_files({lake})", 2),
        snapshots_expired=call(f"CALL ducklake_expire_snapshots({lake}, {older})", older_than=keep),
        files_deleted=call(f"CALL ducklake_cleanup_old_files({lake}, {older})", older_than=keep)
        + call(f"CALL ducklake_delete_orphaned_files({lake}, {older})", older_than=max(keep, _ORPHAN_AGE)),
    )
