"""Tasks of the sweeper flow."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE
from prefect.deployments import run_deployment

from flowhook import sweeper
from flowhook.settings import get_settings
from flowhook.spool import BatchRef, Spool
from tasks import IO_RETRIES

WORKER_FLOW = "process-batch"


def _launch(ref: BatchRef, reason: str = "swept") -> None:
    """Start the worker deployment of the batch's type for it (as its trigger would have)."""
    run_deployment(
        f"{WORKER_FLOW}/{ref.event_type}",
        parameters={"batch": ref.model_dump(mode="json")},
        timeout=0,
        tags=["flowhook", reason, ref.event_type],
    )


@task(cache_policy=NONE, **IO_RETRIES)
def launch_stale_batches() -> sweeper.SweepResult:
    settings = get_settings()
    return sweeper.sweep(
        Spool(settings.spool_dir),
        unclaimed_after=settings.sweep_after_seconds,
        claimed_after=settings.claim_timeout_seconds,
        dead_run_after=settings.dead_run_after_seconds,
        launch=_launch,
    )


@task(cache_policy=NONE, **IO_RETRIES)
def launch_batch(ref: BatchRef) -> None:
    _launch(ref, reason="handed-over")


@task(cache_policy=NONE)
def prune_done_batches(older_than_hours: float) -> int:
    return Spool(get_settings().spool_dir).prune_done(older_than=older_than_hours * 3600)
