"""`latest_heartbeat` on a real store of each backend: the newest stored scheduled tick, by stored time, aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flowhook.store import EventStore, StoredEvent

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def _event(event_id: str, *, occurred: float, stored: float | None, **overrides: Any) -> StoredEvent:
    fields: dict[str, Any] = {
        "id": event_id,
        "type": "scheduled_tick",
        "source": "schedule",
        "occurred": T0 + timedelta(seconds=occurred),
        "received": T0 + timedelta(seconds=occurred + 0.5),
        "emitted": None,
        "started": None,
        "stored": None if stored is None else T0 + timedelta(seconds=stored),
        "batch_id": f"batch-{event_id}",
        "flow_run_id": None,
        "status": "ok",
        "error": None,
        "data": {},
        "result": None,
    }
    fields.update(overrides)
    return StoredEvent(**fields)


def test_no_file_content_means_no_heartbeat(store: EventStore) -> None:
    assert store.latest_heartbeat() is None
    store.write_events([_event("u", occurred=0, stored=1, type="user_request", source="demo")])
    assert store.latest_heartbeat() is None


def test_the_newest_by_stored_time_of_the_schedule_source_wins(store: EventStore) -> None:
    store.write_events(
        [
            _event("tick-1", occurred=0, stored=4),
            # A late tick (nominal time earlier) stored last: stored time decides, not the tick's.
            _event("tick-late", occurred=-600, stored=300.25),
            _event("tick-2", occurred=290, stored=295),
            # Not heartbeats: a tick emitted by hand, and another type from the schedule source.
            _event("manual", occurred=900, stored=905, source="emit"),
            _event("other", occurred=900, stored=905, type="data_update"),
        ]
    )
    assert store.latest_heartbeat() == (T0 - timedelta(seconds=600), T0 + timedelta(seconds=300.25))
    # Failed handling still went the whole way: it counts.
    store.write_events([_event("tick-failed", occurred=600, stored=601, status="failed", error="boom")])
    occurred, stored = store.latest_heartbeat() or (None, None)
    assert (occurred, stored) == (T0 + timedelta(seconds=600), T0 + timedelta(seconds=601))
    assert stored is not None and stored.tzinfo == UTC


def test_rows_without_a_stored_time_are_skipped(store: EventStore) -> None:
    with store.connect() as con:  # written by hand: write_events always stamps `stored`
        con.execute(
            "INSERT INTO events (id, type, source, occurred, received, batch_id, status, data) VALUES "
            "('raw', 'scheduled_tick', 'schedule', TIMESTAMP '2024-05-01 11:00:00', "
            "TIMESTAMP '2024-05-01 11:00:01', 'b', 'ok', '{}')"
        )
    assert store.latest_heartbeat() is None
    store.write_events([_event("tick", occurred=0, stored=2)])
    assert store.latest_heartbeat() == (T0, T0 + timedelta(seconds=2))


def test_another_type_and_source_can_be_asked_for(store: EventStore) -> None:
    store.write_events([_event("d", occurred=1, stored=3, type="data_update", source="files")])
    assert store.latest_heartbeat(event_type="data_update", source="files") == (
        T0 + timedelta(seconds=1),
        T0 + timedelta(seconds=3),
    )
