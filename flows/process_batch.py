"""The worker flow: one run per batch of one event type, launched by that type's trigger."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from flowhook.spool import BatchRef
from tasks.batch import claim_batch, complete_batch, handle_events, store_events


def batch_run_name() -> str:
    """`user_request · 250 events`, so the UI's run list says what each run carried."""
    batch = flow_run.get_parameters().get("batch") or {}
    if isinstance(batch, BatchRef):
        batch = batch.model_dump()
    return f"{batch.get('event_type', 'batch')} · {batch.get('count', '?')} events"


@flow(name="process-batch", flow_run_name=batch_run_name, log_prints=True)
def process_batch(batch: BatchRef) -> dict[str, Any]:
    """Claim the batch, run each event's handler, store the results, retire the batch."""
    events = claim_batch(batch)
    if events is None:
        print(f"batch {batch.batch_id} was already claimed or stored: nothing to do")
        return {"batch_id": batch.batch_id, "events": 0, "inserted": 0}
    handled = handle_events(batch, events)
    inserted = store_events(handled)
    complete_batch(batch)
    failed = sum(1 for event in handled if event.status == "failed")
    print(f"batch {batch.batch_id}: {len(events)} events, {inserted} new rows, {failed} failed")
    return {"batch_id": batch.batch_id, "events": len(events), "inserted": inserted, "failed": failed}
