"""Tasks of the worker flow: one step over the batches it takes (claim, handle, store, retry, complete)."""

from __future__ import annotations

from prefect import get_client, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE
from prefect.runtime import flow_run

from flowhook.events import load_catalog
from flowhook.settings import get_settings
from flowhook.spool import BatchRef
from flowhook.worker import steps
from flowhook.worker.summary import RunSummary, artifact_key
from tasks import IO_RETRIES, Bulk, current_spool, current_store


@task(cache_policy=NONE, **IO_RETRIES)
def process_batches(batches: list[BatchRef]) -> Bulk[steps.Step]:
    """Claim, handle, store, retry the failed ones (sleeping their backoff) and complete: one task run per step,
    so an awake run costs Prefect's database one task run per step, not one per stage (on SQLite, the
    embedded default, every write contends for one lock).

    Claimed in the name of the run, which holds the lease (`process_batch`): a dead run's batches go back sooner.
    """
    settings = get_settings()
    return Bulk(
        steps.process_step(
            batches,
            owner=flow_run.get_id(),
            spool=current_spool(),
            store_to=current_store(),
            catalog=load_catalog(settings.event_modules),
            policy_for_type=settings.retry_policy,
        )
    )


@task(cache_policy=NONE, **IO_RETRIES)
def publish_run_summary(event_type: str, summary: RunSummary) -> None:
    """The run's batches and how to reach their rows, as an artifact on the run; its sources as `source:` tags.

    The key is per type (`flowhook-run-user-request`), so the UI's artifact page keeps that type's history.
    """
    run_id = flow_run.get_id()
    create_markdown_artifact(
        markdown=summary.markdown(event_type, str(run_id)),
        key=artifact_key(event_type),
        description=f"{event_type}: the batches this run stored, their first rows and the query for all of them",
    )
    tags = set(flow_run.get_tags())
    sources = {f"source:{source}" for source in summary.sources}
    if run_id and not sources <= tags:
        with get_client(sync_client=True) as client:
            client.update_flow_run(run_id, tags=sorted(tags | sources))
