"""One batch through the worker's steps on a real spool and a real DuckDB file: claim, handle, store, complete."""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field

from flowhook.events import Event, EventData, Result, event_type, load_catalog
from flowhook.spool import BatchRef, Spool, State, new_batch_id
from flowhook.spool.batches import encode_event
from flowhook.store import DuckDBStore, StoredEvent
from flowhook.worker import drain, steps
from flowhook.worker.config import RetryPolicy

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
    assert steps.claim(spool, batch) == events
    assert spool.state_of(batch.batch_id) is State.CLAIMED
    assert steps.claim(spool, batch) is None


def test_handle_runs_each_handler_and_a_failure_marks_only_its_event(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    events = [make_event(1), make_event(13), make_event(2)]
    batch = spool_batch(spool, events)
    started = T0 + timedelta(minutes=1)
    handled = steps.handle(events, catalog=load_catalog(), batch=batch, started=started, flow_run_id="run-1")
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
    handled = steps.handle([event, make_event(3)], catalog=load_catalog(), batch=batch, started=T0, flow_run_id=None)
    assert [e.status for e in handled] == ["failed", "ok"]
    assert handled[0].error is not None
    assert handled[0].error.startswith(error)


def test_a_batch_goes_through_every_step_into_duckdb(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    db = DuckDBStore(tmp_path / "flowhook.duckdb", lock_timeout=10)
    batch = spool_batch(spool, [make_event(1), make_event(13), make_event(2)])
    now = T0 + timedelta(minutes=2)

    events = steps.claim(spool, batch)
    assert events is not None
    handled = steps.handle(events, catalog=load_catalog(), batch=batch, started=T0, flow_run_id="run-1")
    assert steps.store(db, handled, now=now) == 3
    steps.complete(spool, batch)

    assert spool.state_of(batch.batch_id) is State.DONE
    rows = db.query("SELECT id, status, error, result::VARCHAR, stored, batch_id FROM events ORDER BY id")
    naive_now = now.replace(tzinfo=None)
    assert rows == [
        ("e1", "ok", None, '{"double":2}', naive_now, batch.batch_id),
        ("e13", "failed", "ValueError: unlucky number", None, naive_now, batch.batch_id),
        ("e2", "ok", None, '{"double":4}', naive_now, batch.batch_id),
    ]
    assert steps.claim(spool, batch) is None  # a late trigger finds nothing to do


def test_storing_the_same_batch_twice_inserts_nothing_the_second_time(tmp_path: Path) -> None:
    db = DuckDBStore(tmp_path / "flowhook.duckdb", lock_timeout=10)
    batch = BatchRef(batch_id="b", event_type=PROBE, count=2, sealed=T0)
    handled = steps.handle(
        [make_event(1), make_event(2)], catalog=load_catalog(), batch=batch, started=T0, flow_run_id=None
    )
    assert steps.store(db, handled, now=T0) == 2
    assert steps.store(db, handled, now=T0 + timedelta(hours=1)) == 0
    assert db.count_events(event_type=PROBE) == 2
    # The first write wins: a re-run does not move the stored time.
    assert {stored for (stored,) in db.query("SELECT stored FROM events")} == {T0.replace(tzinfo=None)}


def test_store_stamps_the_current_time_by_default(tmp_path: Path) -> None:
    db = DuckDBStore(tmp_path / "flowhook.duckdb", lock_timeout=10)
    batch = BatchRef(batch_id="b", event_type=PROBE, count=1, sealed=T0)
    handled = steps.handle([make_event(1)], catalog=load_catalog(), batch=batch, started=T0, flow_run_id=None)
    before = datetime.now(UTC)
    steps.store(db, handled)
    [(stored,)] = db.query("SELECT stored FROM events")
    assert before - timedelta(seconds=1) <= stored.replace(tzinfo=UTC) <= datetime.now(UTC)


def test_an_already_claimed_batch_returns_none(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    batch = spool_batch(spool, [make_event(1)], state=State.CLAIMED)
    assert steps.claim(spool, batch) is None
    assert spool.state_of(batch.batch_id) is State.CLAIMED


def test_claim_all_leaves_out_batches_another_run_has(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    mine = spool_batch(spool, [make_event(1), make_event(2)])
    theirs = spool_batch(spool, [make_event(3)], state=State.CLAIMED)
    claimed = steps.claim_all(spool, [mine, theirs])
    assert [(batch.batch_id, [e.id for e in events]) for batch, events in claimed] == [(mine.batch_id, ["e1", "e2"])]


def test_handle_all_keeps_each_events_batch(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    first = spool_batch(spool, [make_event(1)])
    second = spool_batch(spool, [make_event(2), make_event(13)])
    claimed = steps.claim_all(spool, [first, second])
    handled = steps.handle_all(claimed, catalog=load_catalog(), started=T0, flow_run_id="run-1")
    assert [(e.id, e.batch_id, e.status) for e in handled] == [
        ("e1", first.batch_id, "ok"),
        ("e2", second.batch_id, "ok"),
        ("e13", second.batch_id, "failed"),
    ]


class FakeClock:
    """Time that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


def test_next_batches_returns_the_waiting_batches_oldest_first_at_once(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    older = spool_batch(spool, [make_event(1)], state=State.READY)
    newer = spool_batch(spool, [make_event(2)], state=State.SENT)
    os.utime(spool.path(State.READY, older.batch_id), (time.time() - 10, time.time() - 10))
    other = new_batch_id("other_type")  # not this type
    spool.path(State.READY, other).write_bytes(encode_event(make_event(3, "other_type")))
    clock = FakeClock()
    found = drain.next_batches(
        spool, PROBE, idle_seconds=10, until=clock() + 60, max_events=100, clock=clock, sleep=clock.sleep
    )
    assert [ref.batch_id for ref in found] == [older.batch_id, newer.batch_id]
    assert [ref.count for ref in found] == [1, 1]
    assert all(ref.emitted is not None and ref.emitted >= ref.sealed for ref in found)  # handed on when found
    assert clock.slept == 0


def test_a_woken_run_takes_the_batches_sealed_while_it_started_in_its_first_step(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    woken = spool_batch(spool, [make_event(1)], state=State.SENT)
    os.utime(spool.path(State.SENT, woken.batch_id), (time.time() - 10, time.time() - 10))
    meanwhile = [spool_batch(spool, [make_event(n)], state=State.READY) for n in (2, 3, 4)]
    other = new_batch_id("other_type")
    spool.path(State.READY, other).write_bytes(encode_event(make_event(5, "other_type")))
    found = drain.woken_with(spool, woken, max_events=100)
    assert found[0] == woken
    assert sorted(ref.batch_id for ref in found[1:]) == sorted(b.batch_id for b in meanwhile)
    assert drain.woken_with(spool, woken, max_events=1) == [woken]  # full already: the next step
    assert len(drain.woken_with(spool, woken, max_events=2)) == 2


def test_next_batches_takes_about_max_events_but_always_one(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    big = spool_batch(spool, [make_event(n) for n in range(5)], state=State.READY)
    os.utime(spool.path(State.READY, big.batch_id), (time.time() - 10, time.time() - 10))
    spool_batch(spool, [make_event(9)], state=State.READY)
    clock = FakeClock()
    found = drain.next_batches(
        spool, PROBE, idle_seconds=1, until=clock() + 60, max_events=3, clock=clock, sleep=clock.sleep
    )
    assert [ref.batch_id for ref in found] == [big.batch_id]


def test_next_batches_leaves_the_successors_batch_to_it_and_ends_once_the_successor_took_it(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    theirs = spool_batch(spool, [make_event(1)], state=State.READY)
    os.utime(spool.path(State.READY, theirs.batch_id), (time.time() - 10, time.time() - 10))
    successor = drain.left_behind(spool, PROBE)
    assert successor is not None and successor.batch_id == theirs.batch_id  # the oldest waiting
    clock = FakeClock()

    def ours_to_take() -> list[BatchRef]:
        return drain.next_batches(
            spool,
            PROBE,
            idle_seconds=1,
            until=clock() + 60,
            max_events=10,
            handed=theirs.batch_id,
            clock=clock,
            sleep=clock.sleep,
        )

    assert ours_to_take() == []  # only the successor's batch waits: nothing for us
    ours = spool_batch(spool, [make_event(2)], state=State.READY)
    found = ours_to_take()
    assert [ref.batch_id for ref in found] == [ours.batch_id]
    # The successor woke and took its batch: from now on the type's batches are its, ours waits for it.
    assert spool.claim(theirs.batch_id, owner="successor") is not None
    slept = clock.slept
    assert ours_to_take() == []
    assert clock.slept == slept  # at once, not after idle_seconds


def test_next_batches_gives_up_after_idle_seconds(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    clock = FakeClock()
    found = drain.next_batches(
        spool, PROBE, idle_seconds=2, until=clock() + 60, max_events=10, clock=clock, sleep=clock.sleep
    )
    assert found == []
    assert 2 <= clock.slept <= 2.2


def test_next_batches_returns_nothing_once_the_run_is_out_of_time(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool_batch(spool, [make_event(1)], state=State.READY)
    clock = FakeClock()
    found = drain.next_batches(
        spool, PROBE, idle_seconds=10, until=clock() - 1, max_events=10, clock=clock, sleep=clock.sleep
    )
    assert found == []
    assert drain.left_behind(spool, PROBE) is not None  # for a fresh run to take


def test_a_lease_is_fresh_while_held_and_gone_after(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    assert not spool.has_lease(PROBE, fresh_within=5)
    with drain.lease(spool, PROBE, "run-1", every=0.05):
        assert spool.has_lease(PROBE, fresh_within=5)
        assert not spool.has_lease("other_type", fresh_within=5)
        lease_file = spool.leases / f"{PROBE}@run-1"
        os.utime(lease_file, (time.time() - 60, time.time() - 60))
        time.sleep(0.3)  # the heartbeat touches it again
        assert spool.has_lease(PROBE, fresh_within=5)
    assert not spool.has_lease(PROBE, fresh_within=5)
    assert list(spool.leases.iterdir()) == []


def test_a_dead_runs_lease_goes_stale(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.touch_lease(PROBE, "dead-run")
    old = time.time() - 30
    os.utime(spool.leases / f"{PROBE}@dead-run", (old, old))
    assert not spool.has_lease(PROBE, fresh_within=5)
    assert spool.has_lease(PROBE, fresh_within=60)


def test_left_behind_is_none_when_nothing_waits(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool_batch(spool, [make_event(1)], state=State.CLAIMED)
    assert drain.left_behind(spool, PROBE) is None


def test_a_step_stores_the_batch_retries_the_failed_event_and_completes_the_batch(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    batch = spool_batch(spool, [make_event(1), make_event(13), make_event(2)])
    waits: list[float] = []
    store = DuckDBStore(tmp_path / "flowhook.duckdb", lock_timeout=10)
    step = steps.process_step(
        [batch],
        owner="run-1",
        spool=spool,
        store_to=store,
        catalog=load_catalog(),
        policy_for_type=lambda _: RetryPolicy(attempts=3, backoff_seconds=0.5),
        sleep=waits.append,
    )
    rows = {row[0]: row[1:] for row in store.query("SELECT id, status, attempts, result::VARCHAR FROM events")}
    assert (step.batches, step.inserted) == (1, 3)
    assert step.failed == 1  # 13 fails on every call: a dead letter after 3
    assert [event.id for event in step.retried] == ["e13"]
    assert rows == {"e1": ("ok", 1, '{"double":2}'), "e13": ("failed", 3, None), "e2": ("ok", 1, '{"double":4}')}
    assert len(waits) == 2  # the backoff before each call again
    assert spool.state_of(batch.batch_id) is State.DONE

    # Done: a late trigger's run, or this one, finds nothing to do.
    assert (
        steps.process_step(
            [batch],
            owner="run-2",
            spool=spool,
            store_to=store,
            catalog=load_catalog(),
            policy_for_type=lambda _: RetryPolicy(),
        ).batches
        == 0
    )
    assert store.count_events(event_type=PROBE) == 3


def test_a_step_tried_again_after_an_io_error_takes_its_own_claimed_batch_and_stores_nothing_twice(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path / "spool")
    batch = spool_batch(spool, [make_event(1), make_event(2)])
    store = DuckDBStore(tmp_path / "flowhook.duckdb", lock_timeout=10)
    assert steps.claim(spool, batch, owner="run-1") is not None  # then the store failed: the task runs again
    step = dict(spool=spool, store_to=store, catalog=load_catalog(), policy_for_type=lambda _: RetryPolicy())
    assert steps.process_step([batch], owner="run-2", **step).batches == 0  # not another run's
    again = steps.process_step([batch], owner="run-1", **step)
    assert (again.batches, again.inserted) == (1, 2)
    assert spool.state_of(batch.batch_id) is State.DONE


class FlakySpool(Spool):
    """A spool whose first listing fails, as S3 does for a moment."""

    failures = 1

    def pending(self, event_type: str, *, max_events: int) -> list[BatchRef]:
        if self.failures:
            self.failures -= 1
            raise OSError("connection reset")
        return super().pending(event_type, max_events=max_events)


def test_next_batches_looks_again_after_a_failed_listing(tmp_path: Path) -> None:
    spool = FlakySpool(tmp_path / "spool")
    batch = spool_batch(spool, [make_event(1)])
    clock = FakeClock()
    found = drain.next_batches(
        spool, PROBE, idle_seconds=2, until=clock() + 60, max_events=10, clock=clock, sleep=clock.sleep
    )
    assert [ref.batch_id for ref in found] == [batch.batch_id]
    assert spool.failures == 0 and 0 < clock.slept < 0.5


def test_next_batches_waits_for_the_next_step_time_and_takes_what_arrived_meanwhile(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    first = spool_batch(spool, [make_event(1)])
    clock = FakeClock()
    arrived: list[BatchRef] = []

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        arrived.append(spool_batch(spool, [make_event(2)]))  # came while the run waited for its step time

    found = drain.next_batches(
        spool,
        PROBE,
        idle_seconds=10,
        until=clock() + 60,
        max_events=10,
        not_before=clock() + 0.7,
        clock=clock,
        sleep=sleep,
    )
    assert {ref.batch_id for ref in found} == {first.batch_id, arrived[0].batch_id}
    assert 0.7 <= clock.slept < 0.8


class _GcWatchingStore(DuckDBStore):
    """A real store that notes whether Python's cyclic collector was on at each write."""

    collector_on: list[bool]

    def write_events(self, events: Sequence[StoredEvent], **kwargs: Any) -> int:
        self.collector_on.append(gc.isenabled())
        return super().write_events(events, **kwargs)


def test_a_step_over_many_waiting_batches_stores_each_event_once_with_the_collector_paused(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    batches = [spool_batch(spool, [make_event(n) for n in range(100 + b * 50, 150 + b * 50)]) for b in range(12)]
    redelivered = spool_batch(spool, [make_event(n) for n in range(100, 700, 7)])  # ids already in the batches above
    store = _GcWatchingStore(tmp_path / "flowhook.duckdb", lock_timeout=10)
    store.collector_on = []
    was_on = gc.isenabled()
    gc.enable()
    try:
        step = steps.process_step(
            [*batches, redelivered],
            owner="run-1",
            spool=spool,
            store_to=store,
            catalog=load_catalog(),
            policy_for_type=lambda _: RetryPolicy(attempts=1),
        )
        assert gc.isenabled()  # back as it was
    finally:
        if not was_on:
            gc.disable()
    assert (step.batches, step.inserted) == (13, 600)
    assert store.collector_on == [False]  # one write for the whole step, its Arrow built without young collections
    assert store.count_events() == 600
    assert store.duplicate_ids() == 0
    assert {spool.state_of(batch.batch_id) for batch in [*batches, redelivered]} == {State.DONE}
