"""Tasks of the store compaction flow."""

from __future__ import annotations

from datetime import timedelta

from prefect import task
from prefect.cache_policies import NONE

from flowhook.store import Compaction, DuckLakeStore, compact
from tasks import IO_RETRIES, current_store


@task(cache_policy=NONE, **IO_RETRIES)
def compact_lake(keep_hours: float) -> Compaction | None:
    """Compact the store if it is a DuckLake (None for the DuckDB file: it has nothing to compact)."""
    store = current_store()
    if not isinstance(store, DuckLakeStore):
        return None
    return compact(store, keep=timedelta(hours=keep_hours))
