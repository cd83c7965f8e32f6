"""Commands that run the local stack: up, and demo (the README's first command)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, cast

import typer

from flowhook.cli._app import (
    app,
    console,
    fail,
    interrupt_on_sigterm,
    progress_bar,
    repo_root,
    source_secret,
)
from flowhook.events.builtin import SCHEDULED_TICK
from flowhook.names import REPORT_DEPLOYMENT, SCHEDULE_SOURCE, TICK_DEPLOYMENT
from flowhook.settings import get_settings
from flowhook.stack import LocalStack, StackConfig, StackError

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

    from flowhook.store import EventStore


@app.command()
def up(
    prefect_port: Annotated[int, typer.Option(help="Port of the local Prefect server.")] = 4200,
) -> None:
    """Start the local stack (Prefect server, pool, deployments, worker, gateway) until Ctrl-C."""

    def hold(stack: LocalStack) -> None:
        _announce(stack)
        _hold(stack)

    _with_stack(_stack(prefect_port), hold)


@app.command()
def demo(
    events: Annotated[int, typer.Option(help="Signed deliveries to send.", min=1)] = 3000,
    keep: Annotated[bool, typer.Option(help="Keep the stack up after the report, until Ctrl-C.")] = True,
    prefect_port: Annotated[int, typer.Option(help="Port of the local Prefect server.")] = 4200,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for every event to be stored.")] = 900,
) -> None:
    """Start the local stack, send a demo load, wait until it is stored, and report."""

    problems: list[str] = []  # kept though Ctrl-C ends the hold after the report

    def run(stack: LocalStack) -> None:
        problem = _run_demo(stack, events=events, timeout=timeout)
        if problem is not None:
            problems.append(problem)
        _announce(stack)
        if keep:
            _hold(stack)

    _with_stack(_stack(prefect_port), run)
    if problems:
        raise fail(f"the demo did not pass: {problems[0]}")


def _with_stack(stack: LocalStack, body: Callable[[LocalStack], None]) -> None:
    """Start the stack, run `body`, and stop everything whatever happens: Ctrl-C, SIGTERM or an error.

    Once stopping has begun, further Ctrl-C presses (or the copy `uv run` forwards) are ignored,
    so a second signal cannot leave a server or worker behind.
    """
    interrupt_on_sigterm()
    try:
        stack.start()
        body(stack)
    except KeyboardInterrupt:
        console.print("interrupted: stopping the stack")
    except StackError as exc:
        raise fail(str(exc)) from None
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()


def _stack(prefect_port: int) -> LocalStack:
    settings = get_settings()
    config = StackConfig(
        root=repo_root(),
        data_dir=settings.data_dir.resolve(),
        prefect_port=prefect_port,
        gateway_port=settings.gateway_port,
        local_sqs=settings.sqs is None,
        start_sources=True,
        worker_type=settings.worker_type,
    )
    # This process talks to the same server (run_deployment, artifacts).
    os.environ["PREFECT_API_URL"] = config.api_url
    if os.environ.get("PREFECT_SERVER_API_AUTH_STRING") and not os.environ.get("PREFECT_API_AUTH_STRING"):
        os.environ["PREFECT_API_AUTH_STRING"] = os.environ["PREFECT_SERVER_API_AUTH_STRING"]  # as the stack's children
    os.environ["FLOWHOOK_DATA_DIR"] = str(config.data_dir)
    return LocalStack(config, progress=lambda msg: console.log(msg))


def _announce(stack: LocalStack) -> None:
    console.print(
        f"\n[bold]Prefect UI:[/] {stack.config.ui_url}   [bold]gateway:[/] {stack.config.gateway_url}/hooks/<source>"
    )
    console.print(f"logs: {stack.logs}")
    console.print(f"source 'demo' signs with: {source_secret('demo')[1]}  (flowhook secret show demo)")


def _hold(stack: LocalStack) -> None:
    console.print("the stack is up; press Ctrl-C to stop it")
    while True:
        stack.check_alive()
        time.sleep(1.0)


DEMO_BUCKET_SECONDS = 5.0
"""The demo's load lasts about a minute: buckets of 5 s show its shape."""


def _run_demo(stack: LocalStack, *, events: int, timeout: float) -> str | None:
    """Webhooks, SQS messages, files and a tick through the stack; wait until every one is stored. What went wrong,
    or None."""
    from prefect.deployments import run_deployment

    from flowhook.demo import drop_files, plan_deliveries, send_deliveries, send_sqs_messages
    from flowhook.metrics import Window, latency_stats, to_rich
    from flowhook.reporting import REPORT_ARTIFACT_KEY, window_report
    from flowhook.spool import open_spool
    from flowhook.store import store_from_config

    settings = get_settings()
    config, secret = source_secret("demo")
    deliveries = plan_deliveries(events)
    started = time.monotonic()
    since = datetime.now(UTC)
    with progress_bar() as bar:
        task = bar.add_task("sending signed webhook deliveries", total=len(deliveries))
        url = f"{stack.config.gateway_url}/hooks/demo"
        result = asyncio.run(
            send_deliveries(url, secret, deliveries, signature=config.signature, on_sent=lambda: bar.advance(task))
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
    run_deployment(TICK_DEPLOYMENT, timeout=0)
    console.log(f"schedule: one {TICK_DEPLOYMENT} run started (one {SCHEDULED_TICK})")

    db = store_from_config(settings.store_config)
    ids = [event_id for group in expected.values() for event_id in group]
    stored = ticks = 0
    with progress_bar() as bar:
        task = bar.add_task("waiting for worker flows to store them", total=len(ids) + 1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            stack.check_alive()
            stored = _count_stored(db, ids)
            ticks = _count_ticks(db, since)
            bar.update(task, completed=stored + min(ticks, 1))
            if stored >= len(ids) and ticks:
                break
            time.sleep(1.0)
    elapsed = time.monotonic() - started
    duplicates = db.duplicate_ids()
    for name, group in expected.items():
        console.log(f"{name}: sent {len(group)}, stored {_count_stored(db, group)}")
    console.log(f"schedule: {ticks} tick(s) stored; duplicates: {duplicates}; {elapsed:.1f}s in all")
    if stored < len(ids) or not ticks:
        console.log(f"[red]not everything was stored in time; spool: {open_spool(settings).counts()}")
        return f"{stored:,} of {len(ids):,} events and {ticks} ticks were stored within {timeout:g} s"
    console.log(f"running the reporting flow ({REPORT_DEPLOYMENT})")
    # run_deployment is sync-compatible: called from sync code it returns the FlowRun itself.
    run = cast(
        "FlowRun",
        run_deployment(
            REPORT_DEPLOYMENT,
            parameters={"since": since.isoformat(), "bucket_seconds": DEMO_BUCKET_SECONDS},
            timeout=300,
        ),
    )
    state = run.state.name if run.state else "unknown"
    console.log(f"report flow run {run.name}: {state}")
    report = window_report(
        db,
        open_spool(settings),
        Window(since, datetime.now(UTC), bucket_seconds=DEMO_BUCKET_SECONDS),
        target_p99_seconds=settings.report_target_p99_seconds,
        samples_dir=settings.samples_dir,
    )
    console.print(to_rich(report))
    console.print(
        f"report artifact: {stack.config.ui_url}/artifacts/key/{REPORT_ARTIFACT_KEY}   chart: {settings.reports_dir}/"
    )
    console.print(
        f"[bold]sent = {len(ids) + ticks}, stored = {stored + ticks}, duplicates = {duplicates}[/]  "
        f"(webhooks {len(expected['webhooks'])}, sqs {len(expected.get('sqs', []))}, "
        f"files {len(expected['files'])}, ticks {ticks}; {len(ids) / elapsed:.0f} events/s end to end)"
    )
    problems = [f"{duplicates:,} ids stored more than once"] if duplicates else []
    if state != "Completed":
        problems.append(f"the report flow run {run.name} ended {state}")
    return "; ".join(problems) or None


def _count_ticks(db: EventStore, since: datetime) -> int:
    rows = db.query(
        "SELECT count(*) FROM events WHERE source = ? AND received >= ?", [SCHEDULE_SOURCE, since.replace(tzinfo=None)]
    )
    return int(rows[0][0])


def _count_stored(db: EventStore, ids: list[str]) -> int:
    rows = db.query("SELECT count(*) FROM events WHERE id IN (SELECT unnest(?::VARCHAR[]))", [ids])
    return int(rows[0][0])
