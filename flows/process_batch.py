"""The worker flow: one run per batch its type's trigger names, then awake for the next ones."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from flowhook.names import WORKER_FLOW
from flowhook.settings import get_settings
from flowhook.spool import BatchRef, open_spool
from flowhook.worker import run_names
from flowhook.worker.drain import drain
from flowhook.worker.watchdog import HEARTBEAT_TYPE
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
    """Claim, handle and store the batch; then, while awake, every batch of its type that arrives (`drain`)."""
    settings = get_settings()
    drained = drain(
        batch,
        spool=open_spool(settings),
        owner=str(flow_run.get_id()),  # the lease's and the claims' owner: a dead run's batches go back sooner
        policy=settings.drain,
        step=lambda batches: process_batches(batches).items,  # one task run per step, with retries
        hand_over=lambda successor: launch_batch(successor, return_state=True).is_completed(),
        # The watchdog's proactive trigger expects an announced heartbeat; never fails the run.
        stored=(lambda step: announce_heartbeat(Bulk(step.handled), return_state=True))
        if batch.event_type == HEARTBEAT_TYPE
        else None,
        publish=lambda summary: publish_run_summary(batch.event_type, summary, return_state=True),  # never fails
        relaunch=launch_batch,
    )
    print(f"{batch.event_type}: {drained.batches} batches, {drained.events} events, {drained.inserted} new rows")
    return drained.totals
