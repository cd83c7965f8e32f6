"""Commands for the gateway and its webhook sources: gateway, send, secret, quarantine."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flowhook.cli._app import (
    JsonOpt,
    app,
    console,
    errors,
    fail,
    print_json,
    source_config,
    source_secret,
)
from flowhook.settings import get_settings

if TYPE_CHECKING:
    pass


@app.command()
def gateway(
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Processes serving the port and sharing the spool (FLOWHOOK_GATEWAY_WORKERS; CPUs)."),
    ] = None,
) -> None:
    """Run the webhook gateway in the foreground (FLOWHOOK_GATEWAY_HOST/PORT, FLOWHOOK_INGRESS__*)."""
    from flowhook.gateway.workers import serve

    settings = get_settings()
    serve(settings, workers or settings.gateway_workers)


@app.command()
def send(
    path: Annotated[Path, typer.Argument(help="JSON file: one event object or a list of them.", exists=True)],
    source: Annotated[str, typer.Option(help="Source name in the URL, /hooks/<source>.")] = "demo",
    url: Annotated[str | None, typer.Option(help="Gateway base URL; defaults to the configured host and port.")] = None,
) -> None:
    """Sign a JSON file with the source's scheme and secret and deliver it, as a sender would."""
    import uuid

    import httpx

    from flowhook.gateway.schemes import sign

    settings = get_settings()
    config, secret = source_secret(source)
    body = path.read_bytes()
    base = url or f"http://{settings.gateway_host}:{settings.gateway_port}"
    signature = sign(config.signature, body, secret, msg_id=f"msg_{uuid.uuid4().hex}")
    headers = {"content-type": "application/json", **signature}
    try:
        response = httpx.post(f"{base}/hooks/{source}", content=body, headers=headers, timeout=30.0)
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach the gateway at {base}: {exc}") from None
    if response.status_code != 202:
        raise fail(f"the gateway refused the delivery: {response.status_code} {response.text}")
    typer.echo(f"{response.status_code} {response.text}")


secret_app = typer.Typer(help="Webhook secrets of the sources flowhook manages.", no_args_is_help=True)
app.add_typer(secret_app, name="secret")


@secret_app.command("show")
def secret_show(source: Annotated[str, typer.Argument(help="Source name.")]) -> None:
    """Print the secret senders of SOURCE sign with (made on first use)."""
    typer.echo(source_secret(source)[1])


@secret_app.command("rotate")
def secret_rotate(source: Annotated[str, typer.Argument(help="Source name.")]) -> None:
    """Make a new secret for SOURCE and print it once; the old one is accepted for the grace period."""
    from flowhook.gateway.secrets import SecretUnavailable, secret_store

    settings = get_settings()
    config = source_config(source)
    try:
        new = secret_store(settings).rotate(source, config)
    except SecretUnavailable as exc:
        raise fail(str(exc)) from None
    console.print(
        f"new secret for {source!r} (shown once; the previous one is accepted for "
        f"{settings.secret_rotation_grace_hours:g} h):",
        highlight=False,
    )
    typer.echo(new)


quarantine_app = typer.Typer(help="Authentic deliveries that could not become events.", no_args_is_help=True)
app.add_typer(quarantine_app, name="quarantine")


@quarantine_app.command("list")
def quarantine_list(
    source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List quarantined deliveries with why they were rejected (their bodies stay in the quarantine)."""
    from rich.table import Table

    from flowhook.gateway.quarantine import Quarantine

    items = Quarantine(get_settings().quarantine_dir).items(source=source)
    if as_json:
        print_json([item.model_dump(mode="json", exclude={"body"}) for item in items])
        return
    table = Table("id", "source", "received", "code", "message")
    for item in items:
        table.add_row(item.id, item.source, item.received.isoformat(timespec="seconds"), item.code, item.message)
    console.print(table)


@quarantine_app.command("replay")
def quarantine_replay(
    ids: Annotated[list[str] | None, typer.Argument(help="Quarantine ids; none with --all.")] = None,
    replay_all: Annotated[bool, typer.Option("--all", help="Replay everything (of --source).")] = False,
    source: Annotated[str | None, typer.Option(help="With --all: only this source.")] = None,
) -> None:
    """Map quarantined deliveries again (after fixing a type or template) and send what validates on."""
    from flowhook.events import load_catalog
    from flowhook.gateway.forwarder import PrefectEventSink
    from flowhook.gateway.intake import Intake
    from flowhook.gateway.quarantine import Quarantine, replay
    from flowhook.spool import open_spool

    settings = get_settings()
    quarantine = Quarantine(settings.quarantine_dir)
    if replay_all == bool(ids):
        raise fail("name quarantine ids, or pass --all")
    try:
        items = quarantine.items(source=source) if replay_all else [quarantine.get(i) for i in ids or []]
    except KeyError as exc:
        raise fail(str(exc.args[0])) from None
    spool = open_spool(settings)
    result = replay(quarantine, Intake(settings.source_configs(), load_catalog(settings.event_modules)), spool, items)
    for item_id, refs in result.batches.items():
        console.print(f"{item_id}: replayed as {', '.join(f'{r.batch_id} ({r.count})' for r in refs)}")
    for item_id, reason in result.failed.items():
        errors.print(f"[red]{item_id}: still rejected: {reason}")
    if result.refs:

        async def announce() -> None:
            sink = PrefectEventSink(settings.prefect_api_url)
            try:
                await sink.emit(result.refs)
            finally:
                await sink.aclose()

        try:
            asyncio.run(announce())
        except Exception as exc:
            from flowhook.prefect_api import explain, refused

            why = explain(exc) if refused(exc) else type(exc).__name__
            console.print(f"Prefect not reached ({why}); the sweeper will launch these batches")
        else:
            for ref in result.refs:
                spool.mark_sent(ref.batch_id)
    if result.failed:
        raise fail(f"{len(result.failed)} of {len(items)} deliveries are still rejected; they stay in the quarantine")
