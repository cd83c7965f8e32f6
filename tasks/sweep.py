"""Tasks of the sweeper flow."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from prefect import task
from prefect.cache_policies import NONE
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import StateType
from prefect.deployments import run_deployment

from flowhook import audit
from flowhook.names import RUN_TAG, worker_deployment
from flowhook.sampling import archive as samples
from flowhook.settings import get_settings
from flowhook.spool import BatchRef, open_spool
from flowhook.store import store_exists
from flowhook.worker import sweeper
from tasks import IO_RETRIES, current_spool, current_store

# A launched run in one of these states will still claim its batch: launching another only lengthens the queue.
_WILL_CLAIM = (StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING)


def _launch(ref: BatchRef, reason: str = "swept") -> str:
    """Start the worker deployment of the batch's type for it (as its trigger would have); the flow run's id."""
    run = run_deployment(
        worker_deployment(ref.event_type),
        parameters={"batch": ref.model_dump(mode="json")},
        timeout=0,
        tags=[RUN_TAG, reason, ref.event_type],
    )
    return str(run.id)


def _unstarted(run_ids: list[str]) -> set[str]:
    """Which of the flow runs are scheduled, pending or running (so still to claim the batch they were for)."""
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(i) for i in run_ids])))
    return {str(run.id) for run in runs if run.state is not None and run.state.type in _WILL_CLAIM}


@task(cache_policy=NONE, **IO_RETRIES)
def launch_stale_batches() -> sweeper.SweepResult:
    settings = get_settings()
    return sweeper.sweep(
        open_spool(settings),
        unclaimed_after=settings.sweep_after_seconds,
        claimed_after=settings.claim_timeout_seconds,
        dead_run_after=settings.dead_run_after_seconds,
        launch=_launch,
        unstarted=_unstarted,
    )


@task(cache_policy=NONE, **IO_RETRIES)
def launch_batch(ref: BatchRef) -> None:
    current_spool().note_launch(ref.batch_id, _launch(ref, reason="handed-over"))


@task(cache_policy=NONE)
def prune_done_batches(older_than_hours: float | None = None) -> int:
    hours = older_than_hours if older_than_hours is not None else get_settings().done_retention_hours
    return current_spool().prune_done(older_than=hours * 3600)


@task(cache_policy=NONE, **IO_RETRIES)
def audit_store() -> audit.Audit | None:
    """Audit the store against the done batches, when the last audit is older than the interval; save it."""
    settings = get_settings()
    if not store_exists(settings.store_config):
        return None  # nothing stored yet: leave the file to the first write
    store = current_store()
    now = datetime.now(UTC)
    if not audit.audit_due(audit.latest_audit(store), every_seconds=settings.audit_interval_minutes * 60, now=now):
        return None
    found = audit.run_audit(store, current_spool(), now=now)
    audit.save_audit(store, found)
    return found


@task(cache_policy=NONE, **IO_RETRIES)
def import_samples() -> int:
    """Move the gateway's finished sample files into the store (the report reads the rest from the files)."""
    settings = get_settings()
    if not store_exists(settings.store_config):
        return 0
    return samples.import_samples(current_store(), settings.samples_dir, keep_days=settings.sampling.keep_days)
