"""Find batches a lost trigger or a dead flow run left behind, so they can be launched again.

Automations are a wake-up signal, not a guarantee (an action can fail and is not retried), so
every sealed batch that nobody claimed within a threshold is launched by the sweeper.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from flowhook.prefect_api import explain, refused
from flowhook.spool import BatchRef, BatchSpool, State


@dataclass
class SweepResult:
    """What one sweep did: batches launched, those whose launch failed (tried again next sweep), and those
    left to a run launched earlier that has not started yet."""

    launched: list[BatchRef] = field(default_factory=list)
    failed: list[tuple[BatchRef, str]] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)


def _awaited(
    spool: BatchSpool, stale: list[tuple[State, str]], *, unstarted: Callable[[list[str]], set[str]], within: float
) -> set[str]:
    """The unclaimed stale batches whose last launch (less than `within` seconds ago) has yet to start."""
    noted = {}
    for state, batch_id in stale:
        launch = spool.launch_of(batch_id) if state is not State.CLAIMED else None
        if launch is not None and launch[1] < within:
            noted[batch_id] = launch[0]
    if not noted:
        return set()
    waiting = unstarted(sorted(set(noted.values())))
    return {batch_id for batch_id, run_id in noted.items() if run_id in waiting}


def sweep(
    spool: BatchSpool,
    *,
    unclaimed_after: float,
    claimed_after: float,
    launch: Callable[[BatchRef], str | None],
    dead_run_after: float | None = None,
    unstarted: Callable[[list[str]], set[str]] | None = None,
) -> SweepResult:
    """Launch every stale batch (a claimed one is released first); one failed launch stops no other.

    `launch` returns the flow run it created, noted in the spool. Given `unstarted` (which of these flow run ids
    have not started or are running), an unclaimed batch whose noted run is one of them is left to that run,
    for up to `claimed_after` seconds: it claims the batch when a worker slot frees.
    """
    result = SweepResult()
    stale = spool.stale(unclaimed_after=unclaimed_after, claimed_after=claimed_after, dead_run_after=dead_run_after)
    awaited = _awaited(spool, stale, unstarted=unstarted, within=claimed_after) if unstarted else set()
    for state, batch_id in stale:
        if batch_id in awaited:
            result.waiting.append(batch_id)
            continue
        if state is State.CLAIMED:
            if not spool.release(batch_id):
                continue
            state = State.READY
        try:
            ref = spool.ref(state, batch_id)
            # Restart its clock, so a launched batch waiting for a free worker is not launched twice.
            spool.restart_clock(state, batch_id)
        except FileNotFoundError:
            continue  # claimed meanwhile: its trigger was only late
        ref = ref.model_copy(update={"emitted": datetime.now(UTC)})
        try:
            run_id = launch(ref)
        except Exception as exc:  # e.g. no deployment for the type: report it, go on with the rest
            result.failed.append((ref, explain(exc)))
            if refused(exc):  # Prefect refuses the credentials: every other launch would fail alike
                break
            continue
        if run_id is not None:
            spool.note_launch(batch_id, run_id)
        result.launched.append(ref)
    return result
