"""Commands that read the store and the spool: report, sql, status, audit."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from flowhook.cli._app import app, console, fail, parse_time
from flowhook.settings import get_settings

MinutesOpt = Annotated[float, typer.Option(help="Report on the last N minutes (unless --since is given).", min=0.01)]
TimeOpt = Annotated[str | None, typer.Option(help="ISO time; without an offset it is UTC.")]


@app.command()
def report(
    minutes: MinutesOpt = 60.0,
    since: TimeOpt = None,
    until: TimeOpt = None,
    bucket: Annotated[float | None, typer.Option(help="Bucket length in seconds [default: 60].", min=0.001)] = None,
    target_p99: Annotated[
        float | None,
        typer.Option(help="p99 latency target (s) the forecast sizes workers for [default: 30].", min=0.001),
    ] = None,
    buckets: Annotated[int, typer.Option(help="How many of the last buckets to print.", min=0)] = 30,
    chart: Annotated[Path | None, typer.Option(help="Also draw the chart to this PNG file.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print everything as JSON instead of tables.")] = False,
) -> None:
    """λ, μ, θ, τ, latency per stage, backlog, Little's law and a capacity forecast, from the DuckDB file."""
    from flowhook.metrics import Window, to_json_dict, to_rich
    from flowhook.reporting import window_report
    from flowhook.spool import open_spool
    from flowhook.stack import started_at
    from flowhook.store import StoreLockTimeout, store_exists, store_from_settings

    settings = get_settings()
    if not store_exists(settings):
        raise fail(f"no DuckDB file at {settings.database}: nothing has been stored yet")
    now = datetime.now(UTC)
    end = parse_time("--until", until) or now
    start = parse_time("--since", since) or end - timedelta(minutes=minutes)
    try:
        window = Window(start, min(end, now), bucket or settings.report_bucket_seconds)
        result = window_report(
            store_from_settings(settings),
            open_spool(settings),
            window,
            target_p99_seconds=target_p99 or settings.report_target_p99_seconds,
            now=now,
            heartbeat_max_age_seconds=settings.heartbeat_max_age_seconds,
            up_since=started_at(settings.data_dir),
        )
    except StoreLockTimeout as exc:
        raise fail(str(exc)) from None
    except ValueError as exc:
        raise fail(str(exc)) from None
    if chart is not None:
        from flowhook.metrics.chart import render_chart

        render_chart(result, chart)
    if as_json:
        typer.echo(json.dumps(to_json_dict(result), indent=2, ensure_ascii=False))
    else:
        console.print(to_rich(result, buckets=buckets))
        if chart is not None:
            console.print(f"chart: {chart}")


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="One SQL statement, e.g. SELECT type, count(*) FROM events GROUP BY 1")],
) -> None:
    """Run one read-only query on the store (SELECT, WITH, DESCRIBE, SHOW, EXPLAIN); anything that writes is refused."""
    import duckdb
    from rich.table import Table

    from flowhook.store import StoreLockTimeout, store_exists, store_from_settings
    from flowhook.store.read_only import NotReadOnly, read_only_statement

    settings = get_settings()
    try:
        statement = read_only_statement(query)
    except (NotReadOnly, duckdb.Error) as exc:
        raise fail(str(exc)) from None
    if not store_exists(settings):
        raise fail(f"no DuckDB file at {settings.database}: nothing has been stored yet")
    try:
        # The store is held for the query alone: the rows are printed after it is released.
        with store_from_settings(settings).read_only() as con:
            cursor = con.execute(statement)
            columns = [d[0] for d in cursor.description or []]
            rows = cursor.fetchall()
    except (duckdb.Error, StoreLockTimeout) as exc:
        raise fail(str(exc)) from None
    table = Table(*columns)
    for row in rows:
        table.add_row(*("NULL" if v is None else str(v) for v in row))
    console.print(table)


@app.command()
def status(
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 when the trigger path is unhealthy (for scripts and cron).")
    ] = False,
) -> None:
    """Show batches per spool state, events stored per type and whether the trigger path's heartbeat is fresh."""
    from rich.markup import escape

    from flowhook.spool import open_spool
    from flowhook.stack import started_at
    from flowhook.store import store_exists, store_from_settings
    from flowhook.watchdog import check_heartbeat

    settings = get_settings()
    console.print("batches:", open_spool(settings).counts())
    last = None
    if store_exists(settings):
        store = store_from_settings(settings)
        console.print("stored events:", store.event_counts())
        last = store.latest_heartbeat()
    heartbeat = check_heartbeat(
        last,
        now=datetime.now(UTC),
        max_age_seconds=settings.heartbeat_max_age_seconds,
        up_since=started_at(settings.data_dir),
    )
    style = {"healthy": "green", "unhealthy": "bold red", "unknown": "yellow"}[heartbeat.status]
    console.print(f"trigger path: [{style}]{escape(heartbeat.summary)}[/]")
    if check and heartbeat.status == "unhealthy":
        raise typer.Exit(1)


@app.command()
def audit(
    as_json: Annotated[bool, typer.Option("--json", help="Print the finding as JSON.")] = False,
    save: Annotated[
        bool, typer.Option("--save/--no-save", help="Keep the finding in the store, where the report looks for it.")
    ] = True,
) -> None:
    """Check that every acknowledged event in the spool's done batches is stored, once; exit 1 if any is not."""
    import duckdb
    from rich.markup import escape
    from rich.table import Table

    from flowhook.audit import run_audit, save_audit, to_json_dict
    from flowhook.spool import SpoolUnavailable, open_spool
    from flowhook.store import StoreLockTimeout, store_exists, store_from_settings

    settings = get_settings()
    if not store_exists(settings):
        raise fail(f"no DuckDB file at {settings.database}: nothing has been stored yet")
    store = store_from_settings(settings)
    try:
        found = run_audit(store, open_spool(settings))
        if save:
            save_audit(store, found)
    except (duckdb.Error, StoreLockTimeout, SpoolUnavailable) as exc:
        raise fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(to_json_dict(found), indent=2))
    else:
        console.print(
            f"audited {found.acknowledged:,} acknowledged events in {found.done_batches:,} done batches of "
            f"{found.spool} in {found.seconds:.2f} s: {found.missing:,} missing, {found.doubled:,} stored twice",
            soft_wrap=True,
            markup=False,
        )
        if found.missing_ids or found.doubled_ids:
            table = Table("finding", "event id", "batch / rows")
            for event_id, batch_id in found.missing_ids:
                table.add_row("missing", escape(event_id), escape(batch_id))
            for event_id, copies in found.doubled_ids:
                table.add_row("stored twice", escape(event_id), str(copies))
            console.print(table)
    if not found.clean:
        raise typer.Exit(1)
