"""Tasks of the worker flow: claim, handle, retry, store and complete batches; wait for the next ones."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import get_client, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE
from prefect.runtime import flow_run

from flowhook import processing, run_summary
from flowhook.events import load_catalog
from flowhook.settings import get_settings
from flowhook.spool import BatchRef
from flowhook.store import StoredEvent
from tasks import IO_RETRIES, Bulk, current_spool, current_store


@task(cache_policy=NONE, **IO_RETRIES)
def claim_batches(batches: list[BatchRef]) -> Bulk[processing.Claimed]:
    # Claimed in the name of the run, which holds the lease (`process_batch`): a dead run's batches go back sooner.
    return Bulk(processing.claim_all(current_spool(), batches, owner=flow_run.get_id()))


@task(cache_policy=NONE)
def handle_events(claimed: Bulk[processing.Claimed]) -> Bulk[list[StoredEvent]]:
    settings = get_settings()
    return Bulk(
        processing.handle_all(
            claimed.items,
            catalog=load_catalog(settings.event_modules),
            started=datetime.now(UTC),
            flow_run_id=flow_run.get_id(),
        )
    )


@task(cache_policy=NONE)
def retry_events(handled: Bulk[list[StoredEvent]]) -> Bulk[list[StoredEvent]]:
    """The failed events' handlers again, with each type's retry policy (sleeps its backoff); no task retries."""
    settings = get_settings()
    return Bulk(
        processing.retry_failed(
            handled.items, catalog=load_catalog(settings.event_modules), policy_for_type=settings.retry_policy
        )
    )


@task(cache_policy=NONE, **IO_RETRIES)
def store_events(events: Bulk[list[StoredEvent]]) -> int:
    return processing.store(current_store(), events.items)


@task(cache_policy=NONE, **IO_RETRIES)
def complete_batches(claimed: Bulk[processing.Claimed]) -> None:
    spool = current_spool()
    for batch, _ in claimed.items:
        processing.complete(spool, batch)


@task(cache_policy=NONE, **IO_RETRIES)
def next_batches(event_type: str, until: float) -> list[BatchRef]:
    """Batches of the type that arrived meanwhile; [] when the run should end."""
    drain = get_settings().drain
    return processing.next_batches(
        current_spool(),
        event_type,
        idle_seconds=drain.idle_seconds,
        until=until,
        max_events=drain.max_events,
        poll=drain.poll_seconds,
    )


@task(cache_policy=NONE, **IO_RETRIES)
def publish_run_summary(event_type: str, summary: run_summary.RunSummary) -> None:
    """The run's batches and how to reach their rows, as an artifact on the run; its sources as `source:` tags.

    The key is per type (`flowhook-run-user-request`), so the UI's artifact page keeps that type's history.
    """
    run_id = flow_run.get_id()
    create_markdown_artifact(
        markdown=summary.markdown(event_type, str(run_id)),
        key=run_summary.artifact_key(event_type),
        description=f"{event_type}: the batches this run stored, their first rows and the query for all of them",
    )
    tags = set(flow_run.get_tags())
    sources = {f"source:{source}" for source in summary.sources}
    if run_id and not sources <= tags:
        with get_client(sync_client=True) as client:
            client.update_flow_run(run_id, tags=sorted(tags | sources))
