"""Tasks of the store compaction flow."""

from __future__ import annotations

from datetime import timedelta

from prefect import task
from prefect.cache_policies import NONE

from flowhook.settings import get_settings
from flowhook.store import Compaction, DuckLakeStore, EventStore, S3Options, compact, open_store
from tasks import IO_RETRIES


def _store() -> EventStore:
    settings = get_settings()
    secret = settings.ducklake_s3_secret
    return open_store(
        store=settings.store,
        database=settings.database,
        lock_timeout=settings.lock_timeout_seconds,
        ducklake_catalog=settings.ducklake_catalog.get_secret_value() if settings.ducklake_catalog else None,
        ducklake_data_path=settings.ducklake_data_path or settings.data_dir / "lake",
        s3=S3Options(
            endpoint=settings.ducklake_s3_endpoint,
            region=settings.ducklake_s3_region,
            key_id=settings.ducklake_s3_key_id,
            secret=secret.get_secret_value() if secret else None,
            url_style=settings.ducklake_s3_url_style,
            use_ssl=settings.ducklake_s3_use_ssl,
        ),
    )


@task(cache_policy=NONE, **IO_RETRIES)
def compact_lake(keep_hours: float) -> Compaction | None:
    """Compact the store if it is a DuckLake (None for the DuckDB file: it has nothing to compact)."""
    store = _store()
    if not isinstance(store, DuckLakeStore):
        return None
    return compact(store, keep=timedelta(hours=keep_hours))
