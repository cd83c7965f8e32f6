"""The sweeper flow: on a schedule, launch batches whose trigger was lost."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows import scheduled_name
from tasks.sweep import audit_store, import_samples, launch_stale_batches, prune_done_batches


@flow(name="sweep-batches", flow_run_name=scheduled_name("sweep"), log_prints=True)
def sweep_batches(keep_done_hours: float | None = None) -> dict[str, Any]:
    """Launch stale batches, audit the store against the done ones (hourly), prune those older than
    `keep_done_hours` (default FLOWHOOK_DONE_RETENTION_HOURS), import the gateway's finished sample files."""
    swept = launch_stale_batches()
    audited = audit_store()
    pruned = prune_done_batches(keep_done_hours)
    imported = import_samples()
    if audited is not None and not audited.clean:
        print(audited.warning())
    for ref in swept.launched:
        print(f"launched lost batch {ref.batch_id} ({ref.count} events)")
    if swept.waiting:
        print(f"{len(swept.waiting)} stale batches wait for runs launched for them that have not started yet")
    if swept.failed:
        lines = "; ".join(f"{ref.batch_id}: {error}" for ref, error in swept.failed)
        raise RuntimeError(f"{len(swept.failed)} stale batches could not be launched: {lines}")
    return {
        "launched": [ref.batch_id for ref in swept.launched],
        "waiting": swept.waiting,
        "pruned": pruned,
        "sample_files_imported": imported,
        "audit": None if audited is None else {"missing": audited.missing, "doubled": audited.doubled},
    }
