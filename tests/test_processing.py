"""One batch through the worker's steps on a real spool and a real DuckDB file: claim, handle, store, complete."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import Field

from flowhook import processing
from flowhook.events import Event, EventData, Result, event_type, load_catalog
from flowhook.spool import BatchRef, Spool, State, new_batch_id
from flowhook.spool.batches import encode_event
from flowhook.store import DuckDBStore

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
PROBE = "processing_probe"


class Probe(EventData):
    """A test payload whose handler fails on demand."""

    n: int = Field(description="13 makes the handler raise.")


@event_type(PROBE, Probe)
def handle_probe(data: Probe) -> Result:
    if data.n == 13:
        raise ValueError("unlucky number")
    return {"double": data.n * 2}


def make_event(n: int, event_type: str = PROBE) -> Event:
    return Event(
        id=f"e{n}",
        type=event_type,
        source="test",
        occurred=T0 + timedelta(seconds=n),
        received=T0 + timedelta(seconds=n, milliseconds=500),
        data={"n": n},
    )


def spool_batch(spool: Spool, events: list[Event], state: State = State.SENT) -> BatchRef:
    batch_id = new_batch_id(PROBE)
    spool.path(state, batch_id).write_bytes(b"".join(map(encode_event, events)))
    return BatchRef(
        batch_id=batch_id,
        event_type=PROBE,
        count=len(events),
        sealed=T0 + timedelta(seconds=30),
        emitted=T0 + timedelta(seconds=31),
    )


def test_claim_returns_the_events_once(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    events = [make_event(n) for n in range(3)]
    batch = spool_batch(spool, events)
    assert processing.claim(spool, batch) == events
    assert spool.state_of(batch.batch_id) is State.CLAIMED
    assert processing.claim(spool, batch) is None


def test_handle_runs_each_handler_and_a_failure_marks_only_its_event(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    events = [make_event(1), make_event(13), make_event(2)]
    batch = spool_batch(spool, events)
    started = T0 + timedelta(minutes=1)
    handled = processing.handle(events, catalog=load_catalog(), batch=batch, started=started, flow_run_id="run-1")
    assert [(e.id, e.status, e.result, e.error) for e in handled] == [
        ("e1", "ok", {"double": 2}, None),
        ("e13", "failed", None, "ValueError: unlucky number"),
        ("e2", "ok", {"double": 4}, None),
    ]
    for event, stored in zip(events, handled, strict=True):
        assert (stored.type, stored.source, stored.occurred, stored.received) == (
            event.type,
            event.source,
            event.occurred,
            event.received,
        )
        assert stored.data == event.data
        assert (stored.batch_id, stored.flow_run_id, stored.emitted, stored.started) == (
            batch.batch_id,
            "run-1",
            batch.emitted,
            started,
        )
        assert stored.stored is None


@pytest.mark.parametrize(
    ("event", "error"),
    [
        (make_event(5, "no_such_type"), "UnknownEventType: unknown event type 'no_such_type'"),
        (make_event(5).model_copy(update={"data": {"n": "five"}}), "ValidationError:"),
    ],
)
def test_an_event_that_cannot_be_handled_is_failed_not_raised(event: Event, error: str) -> None:
    batch = BatchRef(batch_id="b", event_type=PROBE, count=2, sealed=T0)
    handled = processing.handle(
        [event, make_event(3)], catalog=load_catalog(), batch=batch, started=T0, flow_run_id=None
    )
    assert [e.status for e in handled] == ["failed", "ok"]
    assert handled[0].error is not None
    assert handled[0].error.startswith(error)


def test_a_batch_goes_through_every_step_into_duckdb(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    db = DuckDBStore(tmp_path / "flowhook.duckdb", lock_timeout=10)
    batch = spool_batch(spool, [make_event(1), make_event(13), make_event(2)])
    now = T0 + timedelta(minutes=2)

    events = processing.claim(spool, batch)
    assert events is not None
    handled = processing.handle(events, catalog=load_catalog(), batch=batch, started=T0, flow_run_id="run-1")
    assert processing.store(db, handled, now=now) == 3
    processing.complete(spool, batch)

    assert spool.state_of(batch.batch_id) is State.DONE
    rows = db.query("SELECT id, status, error, result::VARCHAR, stored, batch_id FROM events ORDER BY id")
    naive_now = now.replace(tzinfo=None)
    assert rows == [
        ("e1", "ok", None, '{"double":2}', naive_now, batch.batch_id),
        ("e13", "failed", "ValueError: unlucky number", None, naive_now, batch.batch_id),
        ("e2", "ok", None, '{"double":4}', naive_now, batch.batch_id),
    ]
    assert processing.claim(spool, batch) is None  # a late trigger finds nothing to do


def test_storing_the_same_batch_twice_inserts_nothing_the_second_time(tmp_path: Path) -> None:
    db = DuckDBStore(tmp_path / "flowhook.duckdb", lock_timeout=10)
    batch = BatchRef(batch_id="b", event_type=PROBE, count=2, sealed=T0)
    handled = processing.handle(
        [make_event(1), make_event(2)], catalog=load_catalog(), batch=batch, started=T0, flow_run_id=None
    )
    assert processing.store(db, handled, now=T0) == 2
    assert processing.store(db, handled, now=T0 + timedelta(hours=1)) == 0
    assert db.count_events(event_type=PROBE) == 2
    # The first write wins: a re-run does not move the stored time.
    assert {stored for (stored,) in db.query("SELECT stored FROM events")} == {T0.replace(tzinfo=None)}


def test_store_stamps_the_current_time_by_default(tmp_path: Path) -> None:
    db = DuckDBStore(tmp_path / "flowhook.duckdb", lock_timeout=10)
    batch = BatchRef(batch_id="b", event_type=PROBE, count=1, sealed=T0)
    handled = processing.handle([make_event(1)], catalog=load_catalog(), batch=batch, started=T0, flow_run_id=None)
    before = datetime.now(UTC)
    processing.store(db, handled)
    [(stored,)] = db.query("SELECT stored FROM events")
    assert before - timedelta(seconds=1) <= stored.replace(tzinfo=UTC) <= datetime.now(UTC)


def test_an_already_claimed_batch_returns_none(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    batch = spool_batch(spool, [make_event(1)], state=State.CLAIMED)
    assert processing.claim(spool, batch) is None
    assert spool.state_of(batch.batch_id) is State.CLAIMED
