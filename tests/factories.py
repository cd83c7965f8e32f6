"""Factories for test data."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flowhook.events import Event
from flowhook.spool import Spool, State
from flowhook.store import StoredEvent

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def make_event(
    n: int, event_type: str = "user_request", *, transit_seconds: float = 0.0, data: dict[str, Any] | None = None
) -> Event:
    """Event number `n`: id `e<n>`, occurred n seconds after T0, received `transit_seconds` later."""
    occurred = T0 + timedelta(seconds=n)
    return Event(
        id=f"e{n}",
        type=event_type,
        source="shop",
        occurred=occurred,
        received=occurred + timedelta(seconds=transit_seconds),
        data={"n": n} if data is None else data,
    )


def stored_event(event: Event, *, batch_id: str, status: str = "ok", stored: datetime | None = None) -> StoredEvent:
    """`event` as a worker run stores it, at `stored` (by default a second after it was received)."""
    return StoredEvent(
        id=event.id,
        type=event.type,
        source=event.source,
        occurred=event.occurred,
        received=event.received,
        emitted=event.received,
        started=event.received,
        stored=stored or event.received + timedelta(seconds=1),
        batch_id=batch_id,
        flow_run_id=None,
        status=status,
        error="boom" if status == "failed" else None,
        data=event.data,
        result={},
    )


def spooled_events(spool_dir: Path, states: Sequence[State] = (State.OPEN, State.READY, State.SENT)) -> list[Event]:
    """Every event in the spool's batches in `states`, each batch once though the gateway may seal or forward
    it while this reads (in the order batches move, so one moved meanwhile is found in the next folder)."""
    spool = Spool(spool_dir)
    batches: dict[str, list[Event]] = {}
    for state in states:
        for path in sorted((spool.root / state).rglob("*.jsonl")):
            try:
                batches.setdefault(path.stem, spool.read(path))
            except FileNotFoundError:
                continue
    return [event for events in batches.values() for event in events]
