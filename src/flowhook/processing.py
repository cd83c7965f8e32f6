"""What a worker flow does to one batch, step by step, with no Prefect in sight.

claim (atomic rename) → handle each event (a failing event is recorded, never sinks its batch)
→ store in bulk, keyed by event id → complete (the batch file moves to `done/`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime

from flowhook.events import Catalog, Event
from flowhook.spool import BatchRef, Spool
from flowhook.store import DuckDBStore, StoredEvent


def claim(spool: Spool, batch: BatchRef) -> list[Event] | None:
    """The batch's events, now owned by the caller; None if another run has (or had) them."""
    path = spool.claim(batch.batch_id)
    return None if path is None else spool.read(path)


def handle(
    events: Sequence[Event],
    *,
    catalog: Catalog,
    batch: BatchRef,
    started: datetime,
    flow_run_id: str | None,
) -> list[StoredEvent]:
    """Run each event's handler; an exception marks that event failed and the rest go on."""
    handled = []
    for event in events:
        result = None
        error = None
        try:
            result = dict(catalog.get(event.type).handle(event.data))
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        handled.append(
            StoredEvent(
                id=event.id,
                type=event.type,
                source=event.source,
                occurred=event.occurred,
                received=event.received,
                emitted=batch.emitted,
                started=started,
                stored=None,
                batch_id=batch.batch_id,
                flow_run_id=flow_run_id,
                status="failed" if error else "ok",
                error=error,
                data=event.data,
                result=result,
            )
        )
    return handled


def store(db: DuckDBStore, events: Sequence[StoredEvent], *, now: datetime | None = None) -> int:
    """Write the batch with its `stored` time; returns how many were new (a re-run stores 0)."""
    stored_at = now or datetime.now(UTC)
    return db.write_events([dataclasses.replace(e, stored=stored_at) for e in events])


def complete(spool: Spool, batch: BatchRef) -> None:
    """The batch is stored: retire its file."""
    spool.complete(batch.batch_id)
