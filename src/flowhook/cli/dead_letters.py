"""Commands over dead letters (events that failed on every attempt): replay."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, cast

import typer

from flowhook.cli._app import app, console, errors, fail, parse_time
from flowhook.names import RUN_TAG, worker_deployment
from flowhook.settings import get_settings

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

    from flowhook.spool import BatchRef
    from flowhook.store import DeadLetter


def _per_type(types: Counter[str]) -> str:
    return ", ".join(f"{event_type} {n:,}" for event_type, n in sorted(types.items()))


@app.command()
def replay(
    event_type: Annotated[str | None, typer.Option("--type", help="Only dead letters of this event type.")] = None,
    ids: Annotated[list[str] | None, typer.Option("--id", help="Only this event id (repeat for more).")] = None,
    since: Annotated[str | None, typer.Option(help="Only those that failed at or after this ISO time.")] = None,
    until: Annotated[str | None, typer.Option(help="Only those that failed before this ISO time.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be replayed; change nothing.")] = False,
) -> None:
    """Reprocess failed events (the store's dead letters) in a worker run again.

    The chosen events go back into the spool as batches; a worker run per
    batch stores each over its failed row. Not `quarantine replay` (rejected
    deliveries), nor `dlq redrive` (the SQS queue's dead letters).
    """
    from flowhook.spool import open_spool
    from flowhook.store import store_exists, store_from_config
    from flowhook.worker.dead_letters import launch_all, respool

    settings = get_settings()
    start, end = parse_time("--since", since), parse_time("--until", until)
    if start is not None and end is not None and start >= end:
        raise fail(f"--since ({start.isoformat()}) must be before --until ({end.isoformat()})")
    if not store_exists(settings.store_config):
        console.print(f"nothing to replay: no DuckDB file at {settings.database}")
        return
    store = store_from_config(settings.store_config)
    letters = store.dead_letters(event_type=event_type, ids=ids, since=start, until=end)
    if not letters:
        console.print("nothing to replay: no dead letters match")
        return
    types = Counter(letter.event.type for letter in letters)
    if dry_run:
        _list(letters)
        console.print(f"would replay {len(letters):,} dead letters: {_per_type(types)} (dry run: nothing changed)")
        return
    spool = open_spool(settings)
    refs = respool(spool, letters, max_events=lambda name: settings.batch_policy(name).max_events)
    console.print(f"replayed {len(letters):,} dead letters as {len(refs)} batches: {_per_type(types)}")
    result = launch_all(spool, refs, _launcher(settings.prefect_api_url))
    for ref in result.launched:
        console.print(f"  {worker_deployment(ref.event_type)} launched for {ref.batch_id} ({ref.count:,} events)")
    if result.refused is not None:
        raise fail(
            f"{result.refused}. {len(result.failed)} batches wait in {spool.url}; the sweeper (sweep-batches) "
            f"launches them once they are {settings.sweep_after_seconds:g} s old"
        )
    if result.unreachable is not None:
        console.print(
            f"Prefect is not reachable at {settings.prefect_api_url} ({result.unreachable}): "
            f"{len(result.failed)} batches wait in {spool.url}; the sweeper (sweep-batches) launches "
            f"them once they are {settings.sweep_after_seconds:g} s old and Prefect is up again"
        )
    elif result.failed:
        for ref, error in result.failed:
            errors.print(f"[red]  {worker_deployment(ref.event_type)} not launched for {ref.batch_id}: {error}")
        raise fail(f"{len(result.failed)} batches were not launched; they wait in the spool for the sweeper")


def _list(letters: list[DeadLetter]) -> None:
    from rich.table import Table

    table = Table("id", "type", "failed at", "attempts", "error")
    for letter in letters:
        failed_at = letter.stored.isoformat(timespec="seconds") if letter.stored else ""
        table.add_row(letter.event.id, letter.event.type, failed_at, str(letter.attempts), letter.error or "")
    console.print(table)


def _launcher(api_url: str) -> Callable[[BatchRef], str | None]:
    """Start `process-batch/<type>` for a batch, as its trigger (or the sweeper) would, on flowhook's Prefect;
    returns the flow run's id."""

    def launch(ref: BatchRef) -> str | None:
        from prefect.deployments import run_deployment

        from flowhook.prefect_api import prefect_settings

        with prefect_settings(api_url):
            # Sync-compatible: called from sync code it returns the FlowRun itself.
            run = cast(
                "FlowRun",
                run_deployment(
                    worker_deployment(ref.event_type),
                    parameters={"batch": ref.model_dump(mode="json")},
                    timeout=0,
                    tags=[RUN_TAG, "replay", ref.event_type],
                ),
            )
        return str(run.id)

    return launch
