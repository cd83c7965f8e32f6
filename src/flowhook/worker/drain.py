"""The drain loop: what a worker run does from the batch that woke it until it ends.

It takes its batches step by step while awake, holding a lease so the gateway knows this run is awake and
need not wake another (a flow run costs seconds of CPU to start, a batch found by an awake run costs nothing);
near its end it hands the oldest waiting batch to a successor, so the type is never without an awake run, and
ends once the successor has taken that batch: two runs never take the same type's batches for long, so a batch
handed to the next successor is never taken by a run about to end.
The caller gives the work that touches Prefect (a step as a task run, a launch, an artifact) as functions.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from flowhook.spool import BatchRef, BatchSpool
from flowhook.worker.config import DrainPolicy
from flowhook.worker.steps import Step
from flowhook.worker.summary import RunSummary

logger = logging.getLogger(__name__)


@dataclass
class Drained:
    """What a worker run did while awake: its totals, and the summary its flow run publishes."""

    summary: RunSummary = field(default_factory=RunSummary)
    batches: int = 0
    events: int = 0
    inserted: int = 0
    failed: int = 0

    def add(self, step: Step) -> None:
        """Count one step's batches and events into the totals and the summary."""
        self.summary.add(step.handled, step.retried)
        self.batches += step.batches
        self.events += len(step.handled)
        self.inserted += step.inserted
        self.failed += step.failed

    @property
    def totals(self) -> dict[str, int]:
        """The totals as the worker flow returns them."""
        return {"batches": self.batches, "events": self.events, "inserted": self.inserted, "failed": self.failed}


def _print(message: str) -> None:
    """`print`, looked up when called: a flow run with `log_prints` patches it into its log for its duration."""
    print(message)


def drain(
    batch: BatchRef,
    *,
    spool: BatchSpool,
    owner: str,
    policy: DrainPolicy,
    step: Callable[[list[BatchRef]], Step],
    hand_over: Callable[[BatchRef], bool],
    publish: Callable[[RunSummary], object],
    relaunch: Callable[[BatchRef], object],
    stored: Callable[[Step], object] | None = None,
    say: Callable[[str], None] = _print,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> Drained:
    """Take `batch`, then, while awake, every batch of its type that arrives, one `step` at a time; returns the totals.

    Under the lease of `owner` (the flow run): the first step takes the batch and those sealed while the run
    started; each later one what waits, at most every `policy.step_seconds`; the run ends after
    `policy.idle_seconds` without a batch or `policy.max_seconds` in all. `policy.handover_seconds` before that
    end, the oldest waiting batch goes to `hand_over` (a successor's launch; False: not launched, ours again);
    the run goes on taking the others until the successor has taken it, and ends then.
    After each step that claimed something, `stored` (if given) sees it. Once the lease is dropped, `publish`
    gets the run's summary (if it stored anything) and `relaunch` the type's oldest batch that nobody took
    (sealed while the gateway still saw the lease), unless a successor was launched.
    """
    drained = Drained()
    until = clock() + policy.max_seconds
    handover_at = until - policy.handover_seconds if policy.handover_seconds else float("inf")
    successor: BatchRef | None = None  # the batch our successor was launched for
    # The lease first: a batch sealed from now on is ours to take, the gateway wakes no other run.
    with lease(spool, batch.event_type, owner):
        batches = woken_with(spool, batch, max_events=policy.max_events)
        while batches:
            began = clock()
            if successor is None and began >= handover_at:
                # Near our end, the oldest batch wakes a successor, awake before we end: no cold start for the type.
                successor = batches.pop(0)
                if not hand_over(successor):
                    batches.insert(0, successor)  # not launched: ours, and the next step tries again
                    successor = None
            if batches:
                done = step(batches)
                if not done.batches:  # another run has (or had) them: it takes the type's next ones too
                    say(f"{', '.join(b.batch_id for b in batches)} already claimed by another run")
                    break
                drained.add(done)
                if stored is not None:
                    stored(done)
            # Waiting is no work: a plain call, not a step (each costs Prefect's database a few writes).
            batches = next_batches(
                spool,
                batch.event_type,
                idle_seconds=policy.idle_seconds,
                until=until,
                max_events=policy.max_events,
                poll=policy.poll_seconds,
                not_before=began + policy.step_seconds,
                handed=successor.batch_id if successor else None,
                clock=clock,
                sleep=sleep,
            )
    if drained.summary.lines:  # for the UI: which batches, how they ended, the query for their rows
        publish(drained.summary)
    leftover = left_behind(spool, batch.event_type) if successor is None else None
    if leftover is not None:
        relaunch(leftover)  # sealed while the gateway still saw our lease: wake a fresh run for it
    return drained


def woken_with(spool: BatchSpool, batch: BatchRef, *, max_events: int) -> list[BatchRef]:
    """The batch a run was woken for, then those of its type sealed while the run started (up to about
    `max_events` events in all): the first step takes them all instead of leaving them for the next."""
    try:
        waiting = spool.pending(batch.event_type, max_events=max_events)
    except OSError as exc:  # the spool (S3) hiccuped: the next step looks again
        logger.warning("cannot list the batches of %s: %s", batch.event_type, exc)
        waiting = []
    taken, total = [batch], batch.count
    for ref in waiting:
        if ref.batch_id == batch.batch_id:
            continue
        if total + ref.count > max_events:
            break
        taken.append(ref)
        total += ref.count
    return taken


def next_batches(
    spool: BatchSpool,
    event_type: str,
    *,
    idle_seconds: float,
    until: float,
    max_events: int,
    poll: float = 0.1,
    not_before: float = 0.0,
    handed: str | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> list[BatchRef]:
    """The waiting batches of the type, oldest first, as soon as there are any, but not before `not_before`
    (what arrives until then joins them), except the one `handed` to a successor; [] once none came for
    `idle_seconds`, the clock passed `until` (wall-clock times) or the successor took its batch (it is awake
    and takes the type from here): the run may then end."""
    give_up = min(clock() + idle_seconds, until)
    while True:
        try:
            waiting = spool.pending(event_type, max_events=max_events)
        except OSError as exc:  # the spool (S3) hiccuped: look again at the next poll, as for an empty spool
            logger.warning("cannot list the batches of %s: %s", event_type, exc)
            waiting = None
        if handed is not None and waiting is not None and all(ref.batch_id != handed for ref in waiting):
            return []  # the successor has its batch: left to it, the type's next batches are its too
        batches = [ref for ref in waiting or [] if ref.batch_id != handed]
        if batches and clock() < not_before:
            sleep(not_before - clock())
            continue
        if batches or clock() >= give_up:
            return batches if clock() < until else []
        sleep(poll)


@contextmanager
def lease(spool: BatchSpool, event_type: str, owner: str, *, every: float = 1.0) -> Iterator[None]:
    """Hold a lease on `event_type` (touched every `every` seconds from a thread) while the block runs."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            try:
                spool.touch_lease(event_type, owner)
            except OSError as exc:  # the spool (S3) hiccuped: the next beat tries again; 5 s of them is a dead run
                logger.warning("cannot touch the lease on %s: %s", event_type, exc)

    spool.touch_lease(event_type, owner)
    thread = threading.Thread(target=beat, name=f"lease-{event_type}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        try:
            spool.drop_lease(event_type, owner)
        except OSError as exc:  # left to go stale: the gateway sees the run gone after `lease_seconds`
            logger.warning("cannot drop the lease on %s: %s", event_type, exc)


def left_behind(spool: BatchSpool, event_type: str) -> BatchRef | None:
    """The type's oldest unclaimed batch, for a fresh run: a successor's, or, after the lease is dropped, one
    sealed while the gateway still saw it. None when there is none or the spool cannot say (the sweeper
    launches a batch nobody took)."""
    try:
        pending = spool.pending(event_type, max_events=1)
    except OSError as exc:
        logger.warning("cannot list the batches of %s: %s", event_type, exc)
        return None
    return pending[0] if pending else None
