"""The sweeper on a real spool: stale batches are launched once, claimed ones are released first."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

from flowhook.events import Event
from flowhook.spool import BatchRef, Spool, State, new_batch_id
from flowhook.spool.batches import encode_event
from flowhook.worker import sweeper
from flowhook.worker.sweeper import sweep

UNCLAIMED_AFTER, CLAIMED_AFTER, DEAD_RUN_AFTER = 30.0, 600.0, 30.0


def write_batch(
    spool: Spool, state: State, *, count: int = 1, age: float = 0.0, event_type: str = "user_request"
) -> str:
    batch_id = new_batch_id(event_type)
    path = spool.path(state, batch_id)
    events = [
        Event(
            id=f"{batch_id}-{n}",
            type=event_type,
            source="shop",
            occurred=datetime(2024, 5, 1, tzinfo=UTC),
            received=datetime(2024, 5, 1, tzinfo=UTC),
            data={"n": n},
        )
        for n in range(count)
    ]
    path.write_bytes(b"".join(map(encode_event, events)))
    then = time.time() - age
    os.utime(path, (then, then))
    return batch_id


def run_sweep(spool: Spool) -> tuple[list[BatchRef], list[BatchRef]]:
    """(what launch was called with, what sweep returned)."""
    launched: list[BatchRef] = []
    result = sweep(
        spool,
        unclaimed_after=UNCLAIMED_AFTER,
        claimed_after=CLAIMED_AFTER,
        dead_run_after=DEAD_RUN_AFTER,
        launch=launched.append,
    )
    assert result.failed == []
    return launched, result.launched


def test_stale_batches_are_launched_oldest_first(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    ready = write_batch(spool, State.READY, count=3, age=40)
    sent = write_batch(spool, State.SENT, count=2, age=90, event_type="data_update")
    launched, returned = run_sweep(spool)
    assert returned == launched
    assert [(ref.batch_id, ref.event_type, ref.count) for ref in launched] == [
        (sent, "data_update", 2),
        (ready, "user_request", 3),
    ]
    assert spool.state_of(ready) is State.READY
    assert spool.state_of(sent) is State.SENT  # launching does not claim: the flow run will


def test_fresh_open_and_done_batches_are_left_alone(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    write_batch(spool, State.READY, age=UNCLAIMED_AFTER - 5)
    write_batch(spool, State.SENT, age=1)
    write_batch(spool, State.CLAIMED, age=CLAIMED_AFTER - 5)
    write_batch(spool, State.OPEN, age=10_000)
    write_batch(spool, State.DONE, age=10_000)
    assert run_sweep(spool) == ([], [])


def test_a_stale_claimed_batch_is_released_then_launched(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    claimed = write_batch(spool, State.CLAIMED, count=4, age=CLAIMED_AFTER + 60)
    launched, _ = run_sweep(spool)
    assert [(ref.batch_id, ref.count) for ref in launched] == [(claimed, 4)]
    assert spool.state_of(claimed) is State.READY
    assert spool.claim(claimed) is not None  # a new run can take it


def age_lease(spool: Spool, event_type: str, owner: str, age: float) -> None:
    then = time.time() - age
    os.utime(spool.leases / f"{event_type}@{owner}", (then, then))


def test_a_batch_whose_run_died_goes_back_well_before_the_claim_timeout(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    dead = write_batch(spool, State.READY, count=2)
    alive = write_batch(spool, State.READY, count=3)
    for batch_id, run in ((dead, "run-dead"), (alive, "run-alive")):
        spool.touch_lease("user_request", run)
        assert spool.claim(batch_id, owner=run) is not None
    age_lease(spool, "user_request", "run-dead", DEAD_RUN_AFTER + 1)  # SIGKILLed: its lease stopped
    age_lease(spool, "user_request", "run-alive", 1)

    launched, _ = run_sweep(spool)
    assert [(ref.batch_id, ref.count) for ref in launched] == [(dead, 2)]
    assert spool.state_of(dead) is State.READY and not spool.owner_path(dead).exists()
    assert spool.state_of(alive) is State.CLAIMED  # its run is alive, however long the batch takes

    # A run that failed drops its lease on the way out: its batch goes back at the next sweep.
    spool.drop_lease("user_request", "run-alive")
    launched, _ = run_sweep(spool)
    assert [ref.batch_id for ref in launched] == [alive]


class Runs:
    """The launch and `unstarted` callables: numbered flow runs, some of them not started yet."""

    def __init__(self) -> None:
        self.launched: list[str] = []
        self.started: set[str] = set()
        self.asked: list[list[str]] = []

    def launch(self, ref: BatchRef) -> str:
        self.launched.append(ref.batch_id)
        return f"run-{len(self.launched)}"

    def unstarted(self, run_ids: list[str]) -> set[str]:
        self.asked.append(run_ids)
        return set(run_ids) - self.started


def sweep_with(spool: Spool, runs: Runs) -> sweeper.SweepResult:
    return sweep(
        spool,
        unclaimed_after=UNCLAIMED_AFTER,
        claimed_after=CLAIMED_AFTER,
        dead_run_after=DEAD_RUN_AFTER,
        launch=runs.launch,
        unstarted=runs.unstarted,
    )


def make_stale(spool: Spool, batch_id: str) -> None:
    state = spool.state_of(batch_id)
    assert state is not None
    then = time.time() - UNCLAIMED_AFTER - 1
    os.utime(spool.path(state, batch_id), (then, then))


def test_a_batch_whose_launched_run_has_not_started_is_not_launched_again(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    batch = write_batch(spool, State.SENT, age=100)
    runs = Runs()
    assert [ref.batch_id for ref in sweep_with(spool, runs).launched] == [batch]
    assert (spool.launch_of(batch) or ("",))[0] == "run-1"

    make_stale(spool, batch)  # the run waits in a long queue of runs: the batch goes stale again
    result = sweep_with(spool, runs)
    assert (result.launched, result.waiting) == ([], [batch])
    assert runs.asked[-1] == ["run-1"]  # one question for every noted run

    runs.started.add("run-1")  # it ran and ended without the batch (e.g. it crashed first): launch again
    make_stale(spool, batch)
    assert [ref.batch_id for ref in sweep_with(spool, runs).launched] == [batch]
    assert (spool.launch_of(batch) or ("",))[0] == "run-2"


def test_a_launch_older_than_the_claim_timeout_is_not_waited_for(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    batch = write_batch(spool, State.READY, age=100)
    spool.note_launch(batch, "stuck")
    then = time.time() - CLAIMED_AFTER - 1
    os.utime(spool.launches / batch, (then, then))
    runs = Runs()
    result = sweep_with(spool, runs)
    assert ([ref.batch_id for ref in result.launched], result.waiting, runs.asked) == ([batch], [], [])


def test_a_dead_runs_batch_is_launched_whatever_was_noted(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    batch = write_batch(spool, State.READY)
    spool.note_launch(batch, "run-0")
    spool.claim(batch, owner="run-0")  # claimed, then the run died without a lease
    runs = Runs()
    assert [ref.batch_id for ref in sweep_with(spool, runs).launched] == [batch]
    assert runs.asked == []


def test_a_launched_batch_is_not_launched_again_by_the_next_sweep(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    unclaimed = {write_batch(spool, State.READY, age=100), write_batch(spool, State.SENT, age=100)}
    claimed = write_batch(spool, State.CLAIMED, age=CLAIMED_AFTER + 1)
    first, _ = run_sweep(spool)
    assert {ref.batch_id for ref in first} == {*unclaimed, claimed}
    for ref in first:
        state = spool.state_of(ref.batch_id)
        assert state in (State.READY, State.SENT)
        assert time.time() - spool.path(state, ref.batch_id).stat().st_mtime < 5  # its clock restarted
        assert ref.emitted is not None
        assert abs((datetime.now(UTC) - ref.emitted).total_seconds()) < 5
        if ref.batch_id in unclaimed:
            assert (datetime.now(UTC) - ref.sealed).total_seconds() >= 100  # read before the reset
    assert run_sweep(spool) == ([], [])


def test_a_batch_claimed_between_listing_and_launch_is_skipped(tmp_path: Path) -> None:
    class LateTrigger(Spool):
        """Its trigger was only late: a flow run claims the batch right after the sweeper listed it."""

        def stale(
            self, *, unclaimed_after: float, claimed_after: float, dead_run_after: float | None = None
        ) -> list[tuple[State, str]]:
            found = super().stale(
                unclaimed_after=unclaimed_after, claimed_after=claimed_after, dead_run_after=dead_run_after
            )
            self.claim(late)
            return found

    spool = LateTrigger(tmp_path)
    late = write_batch(spool, State.SENT, age=100)
    other = write_batch(spool, State.READY, age=50)
    launched, _ = run_sweep(spool)
    assert [ref.batch_id for ref in launched] == [other]
    assert spool.state_of(late) is State.CLAIMED


def test_a_claimed_batch_completed_between_listing_and_release_is_skipped(tmp_path: Path) -> None:
    class SlowRunFinishes(Spool):
        def stale(
            self, *, unclaimed_after: float, claimed_after: float, dead_run_after: float | None = None
        ) -> list[tuple[State, str]]:
            found = super().stale(
                unclaimed_after=unclaimed_after, claimed_after=claimed_after, dead_run_after=dead_run_after
            )
            self.complete(slow)
            return found

    spool = SlowRunFinishes(tmp_path)
    slow = write_batch(spool, State.CLAIMED, age=CLAIMED_AFTER + 1)
    assert run_sweep(spool) == ([], [])
    assert spool.state_of(slow) is State.DONE


def test_a_failed_launch_is_reported_and_the_other_batches_still_go(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    orphan = write_batch(spool, State.SENT, age=100, event_type="no_deployment")
    fine = write_batch(spool, State.SENT, age=50)
    launched: list[str] = []

    def launch(ref: BatchRef) -> None:
        if ref.event_type == "no_deployment":
            raise LookupError("deployment process-batch/no_deployment not found")
        launched.append(ref.batch_id)

    result = sweep(spool, unclaimed_after=UNCLAIMED_AFTER, claimed_after=CLAIMED_AFTER, launch=launch)
    assert launched == [fine] == [ref.batch_id for ref in result.launched]
    [(ref, error)] = result.failed
    assert ref.batch_id == orphan and "not found" in error
    assert spool.state_of(orphan) is State.SENT  # still there, tried again by a later sweep
