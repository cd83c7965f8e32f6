"""Find batches a lost trigger or a dead flow run left behind, so they can be launched again.

Automations are a wake-up signal, not a guarantee (an action can fail and is not retried), so
every sealed batch that nobody claimed within a threshold is launched by the sweeper.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from flowhook.spool import BatchRef, Spool, State


@dataclass
class SweepResult:
    """What one sweep did: batches launched, and those whose launch failed (tried again next sweep)."""

    launched: list[BatchRef] = field(default_factory=list)
    failed: list[tuple[BatchRef, str]] = field(default_factory=list)


def sweep(
    spool: Spool,
    *,
    unclaimed_after: float,
    claimed_after: float,
    launch: Callable[[BatchRef], None],
    dead_run_after: float | None = None,
) -> SweepResult:
    """Launch every stale batch (a claimed one is released first); one failed launch stops no other."""
    result = SweepResult()
    stale = spool.stale(unclaimed_after=unclaimed_after, claimed_after=claimed_after, dead_run_after=dead_run_after)
    for state, batch_id in stale:
        if state is State.CLAIMED:
            if not spool.release(batch_id):
                continue
            state = State.READY
        try:
            ref = spool.ref(state, batch_id)
            # Restart its clock, so a launched batch waiting for a free worker is not launched twice.
            os.utime(spool.path(state, batch_id))
        except FileNotFoundError:
            continue  # claimed meanwhile: its trigger was only late
        ref = ref.model_copy(update={"emitted": datetime.now(UTC)})
        try:
            launch(ref)
        except Exception as exc:  # e.g. no deployment for the type: report it, go on with the rest
            result.failed.append((ref, f"{type(exc).__name__}: {exc}"))
            continue
        result.launched.append(ref)
    return result
