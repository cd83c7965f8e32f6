"""The worker flow: one run per batch its type's trigger names, then awake for the next ones."""

from __future__ import annotations

import time
from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from flowhook import processing, run_names
from flowhook.names import WORKER_FLOW
from flowhook.run_summary import RunSummary
from flowhook.settings import get_settings
from flowhook.spool import BatchRef, open_spool
from flowhook.watchdog import HEARTBEAT_TYPE
from tasks import Bulk
from tasks.batch import process_batches, publish_run_summary
from tasks.heartbeat import announce_heartbeat
from tasks.sweep import launch_batch


def batch_run_name() -> str:
    """`user_request · 250 events`, so the UI's run list says what each run was woken for."""
    batch = flow_run.get_parameters().get("batch") or {}
    if isinstance(batch, BatchRef):
        batch = batch.model_dump()
    count = batch.get("count")
    return run_names.batch(str(batch.get("event_type", "batch")), count if isinstance(count, int) else None)


@flow(name=WORKER_FLOW, flow_run_name=batch_run_name, log_prints=True)
def process_batch(batch: BatchRef) -> dict[str, Any]:
    """Claim, handle and store the batch; then, while awake, every batch of its type that arrives."""
    settings, totals = get_settings(), {"batches": 0, "events": 0, "inserted": 0, "failed": 0}
    drain, until = settings.drain, time.time() + settings.drain.max_seconds
    spool = open_spool(settings)
    summary = RunSummary()  # the run's artifact: its batches, their outcome, the query for their rows
    handover_at = until - drain.handover_seconds if drain.handover_seconds else float("inf")
    successor: BatchRef | None = None  # the batch our successor was launched for
    # The lease first: a batch sealed from now on is ours to take, the gateway wakes no other run.
    with processing.lease(spool, batch.event_type, str(flow_run.get_id())):
        batches = processing.woken_with(spool, batch, max_events=drain.max_events)
        while batches:
            began = time.time()
            if successor is None and began >= handover_at:
                # Near our end, the oldest batch wakes a successor, awake before we end: no cold start for the type.
                successor = batches.pop(0)
                if not launch_batch(successor, return_state=True).is_completed():
                    batches.insert(0, successor)  # not launched: ours, and the next step tries again
                    successor = None
            if batches:
                step = process_batches(batches).items
                if not step.batches:  # another run has (or had) them: it takes the type's next ones too
                    print(f"{', '.join(b.batch_id for b in batches)} already claimed by another run")
                    break
                summary.add(step.handled, step.retried)
                if batch.event_type == HEARTBEAT_TYPE:  # the watchdog's proactive trigger expects this; never fail
                    announce_heartbeat(Bulk(step.handled), return_state=True)
                totals["batches"] += step.batches
                totals["events"] += len(step.handled)
                totals["inserted"] += step.inserted
                totals["failed"] += step.failed
            # Waiting is no work: a plain call, not a task run (each costs Prefect's database a few writes).
            batches = processing.next_batches(
                spool,
                batch.event_type,
                idle_seconds=drain.idle_seconds,
                until=until,
                max_events=drain.max_events,
                poll=drain.poll_seconds,
                not_before=began + drain.step_seconds,
                leave={successor.batch_id} if successor else set(),
            )
    if summary.lines:  # for the UI: which batches, how they ended, the query for their rows; never fails the run
        publish_run_summary(batch.event_type, summary, return_state=True)
    leftover = processing.left_behind(spool, batch.event_type) if successor is None else None
    if leftover is not None:
        launch_batch(leftover)  # sealed while the gateway still saw our lease: wake a fresh run for it
    print(f"{batch.event_type}: {totals['batches']} batches, {totals['events']} events, {totals['inserted']} new rows")
    return totals
