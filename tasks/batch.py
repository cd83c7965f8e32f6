"""Tasks of the worker flow: claim, handle, store and complete one batch."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import task
from prefect.cache_policies import NONE
from prefect.runtime import flow_run

from flowhook import processing
from flowhook.events import Event, load_catalog
from flowhook.settings import get_settings
from flowhook.spool import BatchRef, Spool
from flowhook.store import DuckDBStore, StoredEvent
from tasks import IO_RETRIES


@task(cache_policy=NONE, **IO_RETRIES)
def claim_batch(batch: BatchRef) -> list[Event] | None:
    return processing.claim(Spool(get_settings().spool_dir), batch)


@task(cache_policy=NONE)
def handle_events(batch: BatchRef, events: list[Event]) -> list[StoredEvent]:
    settings = get_settings()
    return processing.handle(
        events,
        catalog=load_catalog(settings.event_modules),
        batch=batch,
        started=datetime.now(UTC),
        flow_run_id=flow_run.get_id(),
    )


@task(cache_policy=NONE, **IO_RETRIES)
def store_events(events: list[StoredEvent]) -> int:
    settings = get_settings()
    return processing.store(DuckDBStore(settings.database, lock_timeout=settings.lock_timeout_seconds), events)


@task(cache_policy=NONE, **IO_RETRIES)
def complete_batch(batch: BatchRef) -> None:
    processing.complete(Spool(get_settings().spool_dir), batch)
