"""The spool protocol, run against each backend (a local folder, S3 on moto's server): states, exactly-once
claims across threads and processes, leases, launches, staleness, pending order, reports and upkeep."""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections import Counter
from datetime import UTC, datetime
from multiprocessing.synchronize import Event as MpEvent
from typing import Any

import pytest

from flowhook.events import Event
from flowhook.spool import BatchNotFound, BatchRef, BatchSpool, State, new_batch_id
from flowhook.spool.batches import encode_event
from flowhook.worker import sweeper
from tests import factories
from tests.spool.backends import SpoolSpec

SPAWN = multiprocessing.get_context("spawn")


def make_event(n: int, event_type: str = "user_request") -> Event:
    return factories.make_event(n, event_type, transit_seconds=1, data={"user_id": f"u{n}", "action": "search"})


def batch_of(spool: BatchSpool, *numbers: int, event_type: str = "user_request") -> str:
    return spool.write_batch([make_event(n, event_type) for n in numbers]).batch_id


def test_a_written_batch_is_ready_then_claimed_exactly_once_then_done(spool_spec: SpoolSpec) -> None:
    spool = spool_spec.open()
    events = [make_event(n) for n in range(3)]
    ref = spool.write_batch(events)
    assert (ref.event_type, ref.count) == ("user_request", 3)
    assert spool.state_of(ref.batch_id) is State.READY
    assert spool.ref(State.READY, ref.batch_id).count == 3
    assert spool.claim_events(ref.batch_id, owner="run-1") == events
    assert spool.state_of(ref.batch_id) is State.CLAIMED
    assert spool.claim_events(ref.batch_id, owner="run-2") is None
    assert spool.claim_events(ref.batch_id) is None
    assert spool.claim_events(ref.batch_id, owner="run-1") == events  # its step tried again: still its batch
    spool.complete(ref.batch_id)
    assert spool.state_of(ref.batch_id) is State.DONE
    assert spool.claim_events(ref.batch_id, owner="run-3") is None  # a late trigger: nothing to redo
    assert spool.state_of(ref.batch_id) is State.DONE
    assert spool.waiting("user_request") == []


def test_claiming_a_batch_not_in_the_spool_raises_batch_not_found(spool_spec: SpoolSpec) -> None:
    spool = spool_spec.open()
    with pytest.raises(BatchNotFound, match="user_request-1-abc"):
        spool.claim_events("user_request-1-abc", owner="run-1")
    assert spool.state_of("user_request-1-abc") is None


def test_mark_sent_moves_a_ready_batch_and_changes_nothing_after_the_claim(spool_spec: SpoolSpec) -> None:
    spool = spool_spec.open()
    batch_id = batch_of(spool, 1)
    spool.mark_sent(batch_id)
    assert spool.state_of(batch_id) is State.SENT
    assert spool.waiting("user_request") == [batch_id]
    assert spool.claim_events(batch_id, owner="run-1") is not None
    spool.mark_sent(batch_id)  # a slow forwarder
    assert spool.state_of(batch_id) is State.CLAIMED
    spool.complete(batch_id)
    spool.mark_sent(batch_id)  # slower still
    assert spool.state_of(batch_id) is State.DONE
    assert spool.waiting("user_request") == []


def test_release_gives_a_claimed_batch_back_as_ready(spool_spec: SpoolSpec) -> None:
    spool = spool_spec.open()
    batch_id = batch_of(spool, 1)
    spool.mark_sent(batch_id)
    assert spool.claim_events(batch_id, owner="run-1") is not None
    assert spool.release(batch_id) is True
    assert spool.state_of(batch_id) is State.READY
    assert spool.release(batch_id) is False  # not claimed any more
    assert spool.claim_events(batch_id, owner="run-2") == [make_event(1)]


def test_a_torn_last_line_is_skipped_and_not_counted(spool_spec: SpoolSpec) -> None:
    spool = spool_spec.open()
    events = [make_event(n) for n in range(3)]
    batch_id = new_batch_id("user_request")
    ref = BatchRef(batch_id=batch_id, event_type="user_request", count=4, sealed=datetime.now(UTC))
    data = b"".join(map(encode_event, events)) + encode_event(make_event(99))[:-7]
    stored = spool.put_batch(ref, data)
    assert stored is not None and stored.count == 3
    assert spool.ref(State.READY, batch_id).count == 3
    assert spool.claim_events(batch_id) == events


def test_pending_returns_unclaimed_batches_of_the_type_oldest_first_up_to_max_events(spool_spec: SpoolSpec) -> None:
    spool = spool_spec.open()
    oldest, middle, newest = batch_of(spool, 1, 2), batch_of(spool, 3, 4, 5), batch_of(spool, 6, 7, 8, 9)
    spool.mark_sent(middle)
    for batch_id, age in ((oldest, 30), (middle, 20), (newest, 10)):
        spool_spec.age(batch_id, age)
    batch_of(spool, 10, event_type="data_update")
    taken = batch_of(spool, 11)
    spool_spec.age(taken, 60)
    assert spool.claim_events(taken, owner="run-1") is not None

    pending = spool.pending("user_request", max_events=5)
    assert [(ref.batch_id, ref.count) for ref in pending] == [(oldest, 2), (middle, 3)]
    assert all(ref.emitted is not None and (datetime.now(UTC) - ref.emitted).total_seconds() < 5 for ref in pending)
    assert [ref.batch_id for ref in spool.pending("user_request", max_events=1)] == [oldest]  # at least one
    assert [ref.batch_id for ref in spool.pending("user_request", max_events=100)] == [oldest, middle, newest]
    assert sorted(spool.waiting("user_request")) == sorted([oldest, middle, newest])
    assert spool.pending("scheduled_tick", max_events=100) == []


def test_stale_finds_old_unclaimed_and_old_claimed_batches_oldest_first(spool_spec: SpoolSpec) -> None:
    spool = spool_spec.open()
    ready_old, sent_old, claimed_old, ready_new, claimed_new, done_old = (batch_of(spool, n) for n in range(6))
    spool.mark_sent(sent_old)
    for batch_id in (claimed_old, claimed_new, done_old):
        spool.claim_events(batch_id)
    spool.complete(done_old)
    for batch_id, age in ((ready_old, 40), (sent_old, 50), (claimed_old, 700), (claimed_new, 40), (done_old, 1000)):
        spool_spec.age(batch_id, age)
    spool_spec.age(ready_new, 5)
    stale = spool.stale(unclaimed_after=30, claimed_after=600)
    assert stale == [(State.CLAIMED, claimed_old), (State.SENT, sent_old), (State.READY, ready_old)]


def test_a_stale_lease_releases_its_runs_claimed_batch(spool_spec: SpoolSpec) -> None:
    spool = spool_spec.open()
    dead, alive, unnamed = batch_of(spool, 1), batch_of(spool, 2), batch_of(spool, 3)
    for run, batch_id in (("run-dead", dead), ("run-alive", alive)):
        spool.touch_lease("user_request", run)
        assert spool.claim_events(batch_id, owner=run) is not None
    assert spool.claim_events(unnamed) is not None
    assert not spool.owner_gone(dead, after=30)
    spool_spec.age_lease("user_request", "run-dead", 31)
    assert spool.owner_gone(dead, after=30)
    assert not spool.owner_gone(alive, after=30)
    assert not spool.owner_gone(unnamed, after=30)  # no owner named: only the claim's age tells
    assert spool.stale(unclaimed_after=30, claimed_after=600) == []  # not asked about dead runs

    launched: list[BatchRef] = []
    result = sweeper.sweep(spool, unclaimed_after=30, claimed_after=600, dead_run_after=30, launch=launched.append)
    assert [ref.batch_id for ref in launched] == [dead] == [ref.batch_id for ref in result.launched]
    assert spool.state_of(dead) is State.READY
    assert spool.state_of(alive) is State.CLAIMED and spool.state_of(unnamed) is State.CLAIMED
    assert spool.claim_events(dead, owner="run-new") == [make_event(1)]

    spool.drop_lease("user_request", "run-alive")  # the run ended without completing its batch
    assert spool.owner_gone(alive, after=30)


def test_a_lease_is_fresh_until_it_is_not_touched_or_dropped(spool_spec: SpoolSpec) -> None:
    spool = spool_spec.open()
    assert not spool.has_lease("user_request", fresh_within=5)
    spool.touch_lease("user_request", "run-1")
    assert spool.has_lease("user_request", fresh_within=5)
    assert not spool.has_lease("user", fresh_within=5)  # another type, however alike its name
    spool_spec.age_lease("user_request", "run-1", 20)
    assert not spool.has_lease("user_request", fresh_within=5)
    assert spool.has_lease("user_request", fresh_within=60)
    spool.touch_lease("user_request", "run-1")
    assert spool.has_lease("user_request", fresh_within=5)
    spool.drop_lease("user_request", "run-1")
    spool.drop_lease("user_request", "run-1")  # again: no error
    assert not spool.has_lease("user_request", fresh_within=60)


def test_a_launch_is_noted_until_its_batch_is_done_or_pruned(spool_spec: SpoolSpec) -> None:
    spool = spool_spec.open()
    done = batch_of(spool, 1)
    assert spool.launch_of(done) is None
    spool.note_launch(done, "run-1")
    spool.note_launch(done, "run-2")  # launched again: the latest counts
    run_id, since = spool.launch_of(done) or ("", -1.0)
    assert run_id == "run-2" and 0 <= since < 5
    spool.claim_events(done)
    spool.complete(done)
    assert spool.launch_of(done) is None

    spool.note_launch("user_request-1-lost", "run-3")  # its batch is gone
    spool_spec.age_launch("user_request-1-lost", 100)
    waiting = batch_of(spool, 2)
    spool.note_launch(waiting, "run-4")
    spool_spec.age_launch(waiting, 100)
    spool.prune_done(older_than=50)
    assert spool.launch_of("user_request-1-lost") is None
    assert spool.launch_of(waiting) is not None  # its batch still waits


def test_restart_clock_makes_an_unclaimed_batch_young_and_refuses_a_claimed_one(spool_spec: SpoolSpec) -> None:
    spool = spool_spec.open()
    ready, claimed = batch_of(spool, 1), batch_of(spool, 2)
    spool_spec.age(ready, 100)
    assert spool.stale(unclaimed_after=30, claimed_after=600) == [(State.READY, ready)]
    spool.restart_clock(State.READY, ready)
    assert spool.stale(unclaimed_after=30, claimed_after=600) == []
    spool.claim_events(claimed)
    with pytest.raises(FileNotFoundError):
        spool.restart_clock(State.READY, claimed)


def test_in_flight_lists_the_events_of_every_batch_not_done(spool_spec: SpoolSpec) -> None:
    spool = spool_spec.open()
    batch_of(spool, 1, 2)
    claimed, done = batch_of(spool, 3), batch_of(spool, 4)
    for batch_id in (claimed, done):
        spool.claim_events(batch_id)
    spool.complete(done)
    flying = sorted(spool.in_flight())
    assert [row[0] for row in flying] == ["e1", "e2", "e3"]
    assert flying[0] == ("e1", "user_request", make_event(1).occurred, make_event(1).received)


def test_done_ids_are_the_done_batches_ids_until_pruned(spool_spec: SpoolSpec) -> None:
    spool = spool_spec.open()
    done, other, claimed = batch_of(spool, 1, 2), batch_of(spool, 3), batch_of(spool, 4)
    batch_of(spool, 5)  # ready: not acknowledged as stored yet
    for batch_id in (done, other, claimed):
        spool.claim_events(batch_id)
    spool.complete(done)
    spool.complete(other)
    assert spool.done_ids() == {done: ["e1", "e2"], other: ["e3"]}
    spool_spec.age(done, 7200)
    spool.prune_done(older_than=3600)
    assert spool.done_ids() == {other: ["e3"]}


def test_prune_done_deletes_only_old_done_batches(spool_spec: SpoolSpec) -> None:
    spool = spool_spec.open()
    old, fresh, waiting = batch_of(spool, 1), batch_of(spool, 2), batch_of(spool, 3)
    for batch_id in (old, fresh):
        spool.claim_events(batch_id)
        spool.complete(batch_id)
    spool_spec.age(old, 7200)
    spool_spec.age(fresh, 60)
    spool_spec.age(waiting, 7200)
    assert spool.prune_done(older_than=3600) == 1
    assert spool.state_of(old) is None
    assert spool.state_of(fresh) is State.DONE
    assert spool.state_of(waiting) is State.READY
    assert spool.prune_done(older_than=3600) == 0


def test_counts_per_state(spool_spec: SpoolSpec) -> None:
    spool = spool_spec.open()
    ids = [batch_of(spool, n) for n in range(6)]
    spool.mark_sent(ids[1])
    for batch_id in ids[2:]:
        spool.claim_events(batch_id)
    for batch_id in ids[3:]:
        spool.complete(batch_id)
    counts = spool.counts()
    assert {state: counts[state] for state in ("ready", "sent", "claimed", "done")} == {
        "ready": 1,
        "sent": 1,
        "claimed": 1,
        "done": 3,
    }


# --- racing claimers ----------------------------------------------------------------------------------

RACERS, RACE_BATCHES = 4, 20


@pytest.mark.timeout(60)
def test_threads_racing_for_the_same_batches_each_claim_a_batch_exactly_once(spool_spec: SpoolSpec) -> None:
    spool = spool_spec.open()
    batch_ids = [batch_of(spool, n) for n in range(RACE_BATCHES)]
    for batch_id in batch_ids[::2]:
        spool.mark_sent(batch_id)
    threads_n = 8
    start = threading.Barrier(threads_n)
    won: dict[int, list[str]] = {}

    def claim_all(racer: int) -> None:
        mine = spool_spec.open()  # a spool (and S3 client) of its own, as each run has
        start.wait(10)
        won[racer] = [b for b in batch_ids if mine.claim_events(b, owner=f"run-{racer}") is not None]

    threads = [threading.Thread(target=claim_all, args=(n,)) for n in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(50)
    claims = Counter(batch_id for ids in won.values() for batch_id in ids)
    assert len(won) == threads_n
    assert set(claims) == set(batch_ids) and set(claims.values()) == {1}
    assert all(spool.state_of(batch_id) is State.CLAIMED for batch_id in batch_ids)


def _claim_all(spec: SpoolSpec, batch_ids: list[str], ready: Any, go: MpEvent, out: Any) -> None:
    spool = spec.open()
    ready.put(os.getpid())
    go.wait(30)
    won = [batch_id for batch_id in batch_ids if spool.claim_events(batch_id, owner=f"run-{os.getpid()}") is not None]
    out.put((os.getpid(), won))


@pytest.mark.timeout(90)
def test_processes_racing_for_the_same_batches_each_claim_a_batch_exactly_once(spool_spec: SpoolSpec) -> None:
    spool = spool_spec.open()
    batch_ids = [batch_of(spool, n) for n in range(RACE_BATCHES)]
    for batch_id in batch_ids[::2]:  # claimed from ready and from sent alike
        spool.mark_sent(batch_id)
    ready, go, out = SPAWN.Queue(), SPAWN.Event(), SPAWN.Queue()
    racers = [SPAWN.Process(target=_claim_all, args=(spool_spec, batch_ids, ready, go, out)) for _ in range(RACERS)]
    for racer in racers:
        racer.start()
    try:
        for _ in racers:
            ready.get(timeout=60)
        go.set()  # every racer is past its imports: they start together
        results = dict(out.get(timeout=30) for _ in racers)
    finally:
        for racer in racers:
            racer.join(10)
    assert [racer.exitcode for racer in racers] == [0] * RACERS
    claims = Counter(batch_id for won in results.values() for batch_id in won)
    assert set(claims) == set(batch_ids)
    assert set(claims.values()) == {1}
    assert all(spool.state_of(batch_id) is State.CLAIMED for batch_id in batch_ids)


def test_a_steps_batches_complete_together_and_completing_again_changes_nothing(spool_spec: SpoolSpec) -> None:
    spool = spool_spec.open()
    first, second, third = batch_of(spool, 1), batch_of(spool, 2), batch_of(spool, 3)
    for batch_id in (first, second):
        assert spool.claim_events(batch_id, owner="run-1") is not None
    spool.complete(first, second)
    assert [spool.state_of(b) for b in (first, second, third)] == [State.DONE, State.DONE, State.READY]
    spool.complete(first, second)
    assert [spool.state_of(b) for b in (first, second)] == [State.DONE, State.DONE]
    assert spool.waiting("user_request") == [third]
