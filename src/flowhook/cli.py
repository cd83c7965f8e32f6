"""The `flowhook` command: thin shells over library functions."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, cast

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from flowhook.settings import get_settings
from flowhook.stack import LocalStack, StackConfig, StackError

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

    from flowhook.sources.webhook import SourceConfig
    from flowhook.store import DuckDBStore

app = typer.Typer(help="flowhook: signed webhooks → Prefect worker flows → DuckDB.", no_args_is_help=True)
console = Console()

MinutesOpt = Annotated[float, typer.Option(help="Report on the last N minutes.", min=0.01)]


def _fail(message: str) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(1)


def _interrupt_on_sigterm() -> None:
    """Ctrl-C and SIGTERM both stop the stack cleanly (SIGINT may arrive ignored from a parent)."""

    def raise_interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, raise_interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _repo_root() -> Path:
    root = Path.cwd()
    if not (root / "prefect.yaml").exists():
        raise _fail("run this from the flowhook repository root (the folder with prefect.yaml)")
    return root


@app.command()
def gateway() -> None:
    """Run the webhook gateway in the foreground (FLOWHOOK_GATEWAY_HOST/PORT)."""
    import uvicorn

    from flowhook.gateway import create_app

    settings = get_settings()
    uvicorn.run(
        create_app(settings),
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_level="warning",
        access_log=False,
    )


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
    config, secret = _source_secret(source)
    body = path.read_bytes()
    base = url or f"http://{settings.gateway_host}:{settings.gateway_port}"
    signature = sign(config.signature, body, secret, msg_id=f"msg_{uuid.uuid4().hex}")
    headers = {"content-type": "application/json", **signature}
    try:
        response = httpx.post(f"{base}/hooks/{source}", content=body, headers=headers, timeout=30.0)
    except httpx.HTTPError as exc:
        raise _fail(f"cannot reach the gateway at {base}: {exc}") from None
    typer.echo(f"{response.status_code} {response.text}")
    if response.status_code != 202:
        raise typer.Exit(1)


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
        raise _fail(f"--data is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise _fail("--data must be a JSON object")
    try:
        typer.echo(emit_event(event_type, payload, id=event_id))
    except EmitError as exc:
        for error in exc.errors:
            console.print(f"  {'.'.join(map(str, error.get('loc', [])))}: {error.get('msg')}", highlight=False)
        raise _fail(str(exc)) from None


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
        raise _fail("no queue configured: set FLOWHOOK_SQS__QUEUE_URL (and FLOWHOOK_SQS__ENDPOINT_URL for moto)")
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
    from flowhook.sources.sqs.config import sqs_client
    from flowhook.sources.sqs.redrive import redrive

    settings = get_settings()
    if settings.sqs is None or settings.sqs_dlq_url is None:
        raise _fail("set FLOWHOOK_SQS__QUEUE_URL and FLOWHOOK_SQS_DLQ_URL first")
    moved = redrive(sqs_client(settings.sqs), settings.sqs_dlq_url, settings.sqs.queue_url, limit=limit)
    console.print(f"moved {moved} messages from {settings.sqs_dlq_url} back to {settings.sqs.queue_url}")


secret_app = typer.Typer(help="Webhook secrets of the sources flowhook manages.", no_args_is_help=True)
app.add_typer(secret_app, name="secret")


@secret_app.command("show")
def secret_show(source: Annotated[str, typer.Argument(help="Source name.")]) -> None:
    """Print the secret senders of SOURCE sign with (made on first use)."""
    typer.echo(_source_secret(source)[1])


@secret_app.command("rotate")
def secret_rotate(source: Annotated[str, typer.Argument(help="Source name.")]) -> None:
    """Make a new secret for SOURCE and print it once; the old one is accepted for the grace period."""
    from flowhook.gateway.secrets import SecretUnavailable, secret_store

    settings = get_settings()
    config = _source_config(source)
    try:
        new = secret_store(settings).rotate(source, config)
    except SecretUnavailable as exc:
        raise _fail(str(exc)) from None
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
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List quarantined deliveries with why they were rejected."""
    from rich.table import Table

    from flowhook.gateway.quarantine import Quarantine

    items = Quarantine(get_settings().quarantine_dir).items(source=source)
    if as_json:
        typer.echo(json.dumps([item.model_dump(mode="json", exclude={"body"}) for item in items], indent=2))
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
    from flowhook.spool import Spool, State

    settings = get_settings()
    quarantine = Quarantine(settings.quarantine_dir)
    if replay_all == bool(ids):
        raise _fail("name quarantine ids, or pass --all")
    try:
        items = quarantine.items(source=source) if replay_all else [quarantine.get(i) for i in ids or []]
    except KeyError as exc:
        raise _fail(str(exc.args[0])) from None
    spool = Spool(settings.spool_dir)
    result = replay(quarantine, Intake(settings.source_configs(), load_catalog(settings.event_modules)), spool, items)
    for item_id, refs in result.batches.items():
        console.print(f"{item_id}: replayed as {', '.join(f'{r.batch_id} ({r.count})' for r in refs)}")
    for item_id, reason in result.failed.items():
        console.print(f"[red]{item_id}: still rejected: {reason}")
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
            console.print(f"Prefect not reached ({type(exc).__name__}); the sweeper will launch these batches")
        else:
            for ref in result.refs:
                spool.move(ref.batch_id, State.READY, State.SENT)
    if result.failed:
        raise typer.Exit(1)


def _source_config(source: str) -> SourceConfig:
    sources = get_settings().source_configs()
    if source not in sources:
        raise _fail(f"no source is named {source!r}; configured: {', '.join(sorted(sources))}")
    return sources[source]


def _source_secret(source: str) -> tuple[SourceConfig, str]:
    """A source's configuration and the secret senders sign with now."""
    from flowhook.gateway.secrets import SecretUnavailable, secret_store

    config = _source_config(source)
    try:
        return config, secret_store(get_settings()).secrets(source, config)[0]
    except SecretUnavailable as exc:
        raise _fail(str(exc)) from None


@app.command()
def report(minutes: MinutesOpt = 60.0, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Print λ, μ, θ, τ and measured latency per event type from the DuckDB file."""
    from flowhook.metrics import to_json_dict, to_rich_table
    from flowhook.reporting import window_report
    from flowhook.store import DuckDBStore, StoreLockTimeout

    settings = get_settings()
    if not settings.database.exists():
        raise _fail(f"no DuckDB file at {settings.database}: nothing has been stored yet")
    try:
        result = window_report(
            DuckDBStore(settings.database, lock_timeout=settings.lock_timeout_seconds), minutes=minutes
        )
    except StoreLockTimeout as exc:
        raise _fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(to_json_dict(result), indent=2))
    else:
        console.print(to_rich_table(result))


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="One SQL statement, e.g. SELECT type, count(*) FROM events GROUP BY 1")],
) -> None:
    """Run a query on the DuckDB file, taking the same lock as the pipeline (safe while it runs)."""
    import duckdb
    from rich.table import Table

    from flowhook.store import DuckDBStore

    settings = get_settings()
    if not settings.database.exists():
        raise _fail(f"no DuckDB file at {settings.database}: nothing has been stored yet")
    store = DuckDBStore(settings.database, lock_timeout=settings.lock_timeout_seconds)
    try:
        with store.connect() as con:
            cursor = con.execute(query)
            columns = [d[0] for d in cursor.description or []]
            rows = cursor.fetchall()
    except duckdb.Error as exc:
        raise _fail(str(exc)) from None
    table = Table(*columns)
    for row in rows:
        table.add_row(*("NULL" if v is None else str(v) for v in row))
    console.print(table)


@app.command()
def status() -> None:
    """Show batches per spool state and events stored per type."""
    from flowhook.spool import Spool
    from flowhook.store import DuckDBStore

    settings = get_settings()
    console.print("batches:", Spool(settings.spool_dir).counts())
    if settings.database.exists():
        console.print("stored events:", DuckDBStore(settings.database).event_counts())


@app.command()
def up(
    prefect_port: Annotated[int, typer.Option(help="Port of the local Prefect server.")] = 4200,
) -> None:
    """Start the local stack (Prefect server, pool, deployments, worker, gateway) until Ctrl-C."""

    def hold(stack: LocalStack) -> bool:
        _announce(stack)
        _hold(stack)
        return True

    _with_stack(_stack(prefect_port), hold)


@app.command()
def demo(
    events: Annotated[int, typer.Option(help="Signed deliveries to send.", min=1)] = 3000,
    keep: Annotated[bool, typer.Option(help="Keep the stack up after the report, until Ctrl-C.")] = True,
    prefect_port: Annotated[int, typer.Option(help="Port of the local Prefect server.")] = 4200,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for every event to be stored.")] = 900,
) -> None:
    """Start the local stack, send a demo load, wait until it is stored, and report."""

    def run(stack: LocalStack) -> bool:
        ok = _run_demo(stack, events=events, timeout=timeout)
        _announce(stack)
        if keep:
            _hold(stack)
        return ok

    if not _with_stack(_stack(prefect_port), run):
        raise typer.Exit(1)


def _with_stack(stack: LocalStack, body: Callable[[LocalStack], bool]) -> bool:
    """Start the stack, run `body`, and stop everything whatever happens: Ctrl-C, SIGTERM or an error.

    Once stopping has begun, further Ctrl-C presses (or the copy `uv run` forwards) are ignored,
    so a second signal cannot leave a server or worker behind.
    """
    _interrupt_on_sigterm()
    try:
        stack.start()
        return body(stack)
    except KeyboardInterrupt:
        console.print("interrupted: stopping the stack")
        return True
    except StackError as exc:
        raise _fail(str(exc)) from None
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()


def _stack(prefect_port: int) -> LocalStack:
    settings = get_settings()
    config = StackConfig(
        root=_repo_root(),
        data_dir=settings.data_dir.resolve(),
        prefect_port=prefect_port,
        gateway_port=settings.gateway_port,
        local_sqs=settings.sqs is None,
        start_sources=True,
    )
    # This process talks to the same server (run_deployment, artifacts).
    os.environ["PREFECT_API_URL"] = config.api_url
    os.environ["FLOWHOOK_DATA_DIR"] = str(config.data_dir)
    return LocalStack(config, progress=lambda msg: console.log(msg))


def _announce(stack: LocalStack) -> None:
    console.print(
        f"\n[bold]Prefect UI:[/] {stack.config.ui_url}   [bold]gateway:[/] {stack.config.gateway_url}/hooks/<source>"
    )
    console.print(f"logs: {stack.logs}")
    console.print(f"source 'demo' signs with: {_source_secret('demo')[1]}  (flowhook secret show demo)")


def _hold(stack: LocalStack) -> None:
    console.print("the stack is up; press Ctrl-C to stop it")
    while True:
        stack.check_alive()
        time.sleep(1.0)


def _run_demo(stack: LocalStack, *, events: int, timeout: float) -> bool:
    """Webhooks, SQS messages, files and a tick through the stack; wait until every one is stored."""
    from prefect.deployments import run_deployment

    from flowhook.demo import drop_files, plan_deliveries, send_deliveries, send_sqs_messages
    from flowhook.metrics import latency_stats, to_rich_table
    from flowhook.reporting import window_report
    from flowhook.store import DuckDBStore

    settings = get_settings()
    config, secret = _source_secret("demo")
    deliveries = plan_deliveries(events)
    started = time.monotonic()
    since = datetime.now(UTC)
    with _progress() as progress:
        task = progress.add_task("sending signed webhook deliveries", total=len(deliveries))
        url = f"{stack.config.gateway_url}/hooks/demo"
        result = asyncio.run(
            send_deliveries(url, secret, deliveries, signature=config.signature, on_sent=lambda: progress.advance(task))
        )
    send_seconds = time.monotonic() - started
    acks = latency_stats(result.ack_seconds)
    console.log(
        f"webhooks: {result.deliveries} deliveries ({result.resent} resent as a sender retry) in {send_seconds:.1f}s: "
        f"{len(result.acked_ids)} events acknowledged, {result.rejected} rejected"
        + (f"; ack p50 {acks.p50 * 1000:.1f} ms, p99 {acks.p99 * 1000:.1f} ms" if acks else "")
    )
    for error in result.errors[:5]:
        console.log(f"[red]{error}")
    expected = {"webhooks": sorted(result.acked_ids)}
    if stack.sqs_client is not None:
        expected["sqs"] = send_sqs_messages(stack.sqs_client, stack.sqs_env["FLOWHOOK_SQS__QUEUE_URL"], events // 10)
        console.log(f"sqs: {len(expected['sqs'])} messages on {stack.sqs_env['FLOWHOOK_SQS__QUEUE_URL']}")
    expected["files"] = drop_files(settings.incoming_dir, 5)
    console.log(f"files: {len(expected['files'])} CSV files dropped into {settings.incoming_dir}")
    run_deployment("emit-tick/every-5-minutes", timeout=0)
    console.log("schedule: one emit-tick run started (one scheduled_tick)")

    db = DuckDBStore(settings.database, lock_timeout=settings.lock_timeout_seconds)
    ids = [event_id for group in expected.values() for event_id in group]
    stored = ticks = 0
    with _progress() as progress:
        task = progress.add_task("waiting for worker flows to store them", total=len(ids) + 1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            stack.check_alive()
            stored = _count_stored(db, ids)
            ticks = _count_ticks(db, since)
            progress.update(task, completed=stored + min(ticks, 1))
            if stored >= len(ids) and ticks:
                break
            time.sleep(1.0)
    elapsed = time.monotonic() - started
    duplicates = db.duplicate_ids()
    for name, group in expected.items():
        console.log(f"{name}: sent {len(group)}, stored {_count_stored(db, group)}")
    console.log(f"schedule: {ticks} tick(s) stored; duplicates: {duplicates}; {elapsed:.1f}s in all")
    if stored < len(ids) or not ticks:
        from flowhook.spool import Spool

        console.log(f"[red]not everything was stored in time; spool: {Spool(settings.spool_dir).counts()}")
        return False
    minutes = elapsed / 60 + 1
    console.log("running the reporting flow (publish-report/on-demand)")
    # run_deployment is sync-compatible: called from sync code it returns the FlowRun itself.
    run = cast("FlowRun", run_deployment("publish-report/on-demand", parameters={"minutes": minutes}, timeout=300))
    state = run.state.name if run.state else "unknown"
    console.log(f"report flow run {run.name}: {state}")
    console.print(to_rich_table(window_report(db, minutes=minutes)))
    console.print(
        f"[bold]sent = {len(ids) + ticks}, stored = {stored + ticks}, duplicates = {duplicates}[/]  "
        f"(webhooks {len(expected['webhooks'])}, sqs {len(expected.get('sqs', []))}, "
        f"files {len(expected['files'])}, ticks {ticks}; {len(ids) / elapsed:.0f} events/s end to end)"
    )
    return stored == len(ids) and duplicates == 0 and state == "Completed"


def _count_ticks(db: DuckDBStore, since: datetime) -> int:
    rows = db.query(
        "SELECT count(*) FROM events WHERE source = 'schedule' AND received >= ?", [since.replace(tzinfo=None)]
    )
    return int(rows[0][0])


def _count_stored(db: DuckDBStore, ids: list[str]) -> int:
    rows = db.query("SELECT count(*) FROM events WHERE id IN (SELECT unnest(?::VARCHAR[]))", [ids])
    return int(rows[0][0])


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
