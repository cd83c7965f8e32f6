"""The compaction flow: on a schedule, merge the small files a DuckLake store's writes leave, expire old snapshots."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import flow

from flows import scheduled_name
from tasks.compaction import compact_lake


@flow(name="compact-store", flow_run_name=scheduled_name("compact"), log_prints=True)
def compact_store(keep_hours: float = 24.0) -> dict[str, Any]:
    """Compact the DuckLake store, keeping `keep_hours` of snapshots (time travel); a no-op for a DuckDB file."""
    done = compact_lake(keep_hours)
    if done is None:
        print("the store is a DuckDB file: nothing to compact")
        return {}
    print(
        f"flushed {done.rows_flushed} inlined rows, merged {done.files_merged} files, rewrote "
        f"{done.files_rewritten}, expired {done.snapshots_expired} snapshots, deleted {done.files_deleted} files"
    )
    return asdict(done)
