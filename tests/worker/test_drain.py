"""The drain loop on a real spool, the Prefect side (a step's task run, a launch, an artifact) as plain functions."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowhook.spool import BatchRef, Spool
from flowhook.worker.config import DrainPolicy
from flowhook.worker.drain import Drained, drain
from flowhook.worker.steps import Step
from flowhook.worker.summary import RunSummary
from tests.factories import make_event, stored_event

TYPE = "user_request"
OWNER = "run-1"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Crew:
    """What the worker flow hands the loop, recorded: each step claims, stores (here: nowhere) and completes."""

    def __init__(self, spool: Spool, *, launches: bool = True, claims: bool = True) -> None:
        self.spool, self.launches, self.claims = spool, launches, claims
        self.steps: list[list[str]] = []
        self.handed: list[str] = []
        self.published: list[RunSummary] = []
        self.relaunched: list[str] = []
        self.said: list[str] = []

    def step(self, batches: list[BatchRef]) -> Step:
        self.steps.append([b.batch_id for b in batches])
        handled = []
        for batch in batches if self.claims else []:
            events = self.spool.claim_events(batch.batch_id, owner=OWNER) or []
            handled += [stored_event(event, batch_id=batch.batch_id) for event in events]
            self.spool.complete(batch.batch_id)
        claimed = len(batches) if self.claims else 0
        return Step(batches=claimed, handled=handled, retried=[], inserted=len(handled), failed=0)

    def hand_over(self, batch: BatchRef) -> bool:
        self.handed.append(batch.batch_id)
        return self.launches

    def run(self, woken: BatchRef, policy: DrainPolicy) -> Drained:
        clock = FakeClock()
        return drain(
            woken,
            spool=self.spool,
            owner=OWNER,
            policy=policy,
            step=self.step,
            hand_over=self.hand_over,
            publish=self.published.append,
            relaunch=lambda ref: self.relaunched.append(ref.batch_id),
            say=self.said.append,
            clock=clock,
            sleep=clock.sleep,
        )


def _batches(spool: Spool, *sizes: int) -> list[BatchRef]:
    first = 0
    refs = []
    for size in sizes:
        refs.append(spool.write_batch([make_event(first + n, TYPE) for n in range(size)]))
        first += size
    return refs


def test_a_run_takes_the_batch_that_woke_it_and_those_waiting_then_publishes_and_ends(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    woken, waiting = _batches(spool, 2, 1)
    crew = Crew(spool)
    drained = crew.run(woken, DrainPolicy(idle_seconds=1, handover_seconds=0, step_seconds=0))
    assert crew.steps == [[woken.batch_id, waiting.batch_id]]  # the first step takes both
    assert drained.totals == {"batches": 2, "events": 3, "inserted": 3, "failed": 0}
    assert [len(summary.lines) for summary in crew.published] == [2]
    assert crew.handed == [] and crew.relaunched == []
    assert not spool.has_lease(TYPE, fresh_within=60)  # dropped at the end


@pytest.mark.parametrize("launched", [True, False])
def test_near_its_end_a_run_hands_the_oldest_batch_to_a_successor(tmp_path: Path, launched: bool) -> None:
    spool = Spool(tmp_path / "spool")
    woken, waiting = _batches(spool, 1, 1)
    crew = Crew(spool, launches=launched)
    # handover_seconds = max_seconds: the run is near its end from the start.
    drained = crew.run(woken, DrainPolicy(idle_seconds=1, max_seconds=10, handover_seconds=10, step_seconds=0))
    assert crew.handed == [woken.batch_id]
    if launched:  # the successor's batch is left to it, and no fresh run is launched for it
        assert crew.steps == [[waiting.batch_id]] and drained.batches == 1
    else:  # not launched: ours again, in the same step; the next try finds nothing left to hand over
        assert crew.steps == [[woken.batch_id, waiting.batch_id]] and drained.batches == 2
    assert crew.relaunched == []


def test_a_run_whose_batches_another_run_has_stops_and_relaunches_what_nobody_took(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    (woken,) = _batches(spool, 1)
    crew = Crew(spool, claims=False)
    drained = crew.run(woken, DrainPolicy(idle_seconds=1, handover_seconds=0, step_seconds=0))
    assert crew.said == [f"{woken.batch_id} already claimed by another run"]
    assert drained.totals == {"batches": 0, "events": 0, "inserted": 0, "failed": 0}
    assert crew.published == []  # nothing stored: no summary
    assert crew.relaunched == [woken.batch_id]  # still unclaimed once the lease is dropped: a fresh run for it


def test_a_run_ends_once_its_successor_took_the_batch_handed_to_it(tmp_path: Path) -> None:
    """Two runs taking one type's batches at once would let the older one take what the younger hands to its own
    successor, leaving that successor nothing and the type without a run: the older one ends instead."""
    spool = Spool(tmp_path / "spool")
    woken, handed = _batches(spool, 1, 1)
    crew = Crew(spool)
    later: list[BatchRef] = []

    def step_then_successor_wakes(batches: list[BatchRef]) -> Step:
        done = Crew.step(crew, batches)
        if crew.handed and not later:  # the successor starts and claims its batch; more arrive meanwhile
            assert spool.claim(crew.handed[0], owner="run-2") is not None
            later.extend(_batches(spool, 1))
        return done

    crew.step = step_then_successor_wakes  # type: ignore[method-assign]
    # handover_seconds = max_seconds: near its end from the start; idle for a long time: only the handover ends it.
    drained = crew.run(woken, DrainPolicy(idle_seconds=60, max_seconds=100, handover_seconds=100, step_seconds=0))
    assert crew.handed == [woken.batch_id]
    assert crew.steps == [[handed.batch_id]] and drained.batches == 1  # then nothing more: the successor's
    assert [ref.batch_id for ref in spool.pending(TYPE, max_events=10)] == [later[0].batch_id]
    assert crew.relaunched == []  # the successor is awake: no fresh run
