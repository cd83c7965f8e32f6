"""Commands for the other sources: emit, watch, sqs poll, dlq redrive."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from flowhook.cli._app import (
    app,
    console,
    errors,
    fail,
)
from flowhook.settings import get_settings

if TYPE_CHECKING:
    pass


@app.command()
def emit(
    event_type: Annotated[str, typer.Argument(help="Event type, e.g. user_request.")],
    data: Annotated[str, typer.Option(help="The event's data as a JSON object.")],
    event_id: Annotated[str | None, typer.Option("--id", help="Your id for the event: a resend is a no-op.")] = None,
) -> None:
    """Send one event through the local gateway (validated, made durable, batched like any other)."""
    from flowhook.sources.emit import EmitError
    from flowhook.sources.emit import emit as emit_event

    try:
        payload = json.loads(data)
    except json.JSONDecodeError as exc:
        raise fail(f"--data is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise fail("--data must be a JSON object")
    try:
        typer.echo(emit_event(event_type, payload, id=event_id))
    except EmitError as exc:
        for error in exc.errors:
            errors.print(f"  {'.'.join(map(str, error.get('loc', [])))}: {error.get('msg')}", highlight=False)
        raise fail(str(exc)) from None


@app.command()
def watch(
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds (default: never).")] = None,
) -> None:
    """Watch the incoming folder: new or changed files become data_update events."""
    from flowhook.sources.emit import local_sink
    from flowhook.sources.files import SOURCE, FileWatcher
    from flowhook.sources.files import watch as watch_files

    settings = get_settings()
    folder = settings.incoming_dir
    folder.mkdir(parents=True, exist_ok=True)
    console.print(f"watching {folder} every {settings.watch_interval_seconds:g}s; Ctrl-C stops")
    watcher = FileWatcher(folder, settings.data_dir / "state" / "files.json")
    try:
        reported = watch_files(
            watcher,
            local_sink(settings, SOURCE),
            dataset=folder.name,
            interval=settings.watch_interval_seconds,
            duration=duration,
        )
    except KeyboardInterrupt:
        return
    console.print(f"{reported} files reported")


sqs_app = typer.Typer(help="The SQS source.", no_args_is_help=True)
app.add_typer(sqs_app, name="sqs")


@sqs_app.command("poll")
def sqs_poll(
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds (default: never).")] = None,
) -> None:
    """Poll the configured queue (FLOWHOOK_SQS__QUEUE_URL …) into the local gateway; Ctrl-C stops."""
    from flowhook.sources.sqs.run import poll_configured_queue

    settings = get_settings()
    if settings.sqs is None:
        raise fail("no queue configured: set FLOWHOOK_SQS__QUEUE_URL (and FLOWHOOK_SQS__ENDPOINT_URL for moto)")
    console.print(f"polling {settings.sqs.queue_url}; Ctrl-C stops")
    try:
        poll_configured_queue(settings, duration=duration)
    except KeyboardInterrupt:
        return


dlq_app = typer.Typer(help="The SQS source's dead-letter queue.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")


@dlq_app.command("redrive")
def dlq_redrive(
    limit: Annotated[int | None, typer.Option(help="Move at most this many messages.", min=1)] = None,
) -> None:
    """Move messages from the dead-letter queue (FLOWHOOK_SQS_DLQ_URL) back to the queue."""
    from flowhook.sources.sqs.client import sqs_client
    from flowhook.sources.sqs.redrive import redrive

    settings = get_settings()
    if settings.sqs is None or settings.sqs_dlq_url is None:
        raise fail("set FLOWHOOK_SQS__QUEUE_URL and FLOWHOOK_SQS_DLQ_URL first")
    moved = redrive(sqs_client(settings.sqs), settings.sqs_dlq_url, settings.sqs.queue_url, limit=limit)
    console.print(f"moved {moved} messages from {settings.sqs_dlq_url} back to {settings.sqs.queue_url}")
