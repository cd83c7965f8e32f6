"""Commands that read the store and the spool: report, sql, status, audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flowhook.cli._app import JsonOpt, app, console, fail, json_text, parse_time, print_json
from flowhook.cli._errors import explain
from flowhook.settings import Settings, get_settings

if TYPE_CHECKING:
    from flowhook.deployments import TypeDeployment

MinutesOpt = Annotated[float, typer.Option(help="Report on the last N minutes (unless --since is given).", min=0.01)]
TimeOpt = Annotated[str | None, typer.Option(help="ISO time; without an offset it is UTC.")]


@app.command()
def report(
    minutes: MinutesOpt = 60.0,
    since: TimeOpt = None,
    until: TimeOpt = None,
    bucket: Annotated[
        float | None,
        typer.Option(help="Bucket length in seconds (default: 60, the report_bucket_seconds setting).", min=0.001),
    ] = None,
    target_p99: Annotated[
        float | None,
        typer.Option(
            help="p99 latency target (s) the forecast sizes workers for "
            "(default: 30, the report_target_p99_seconds setting).",
            min=0.001,
        ),
    ] = None,
    buckets: Annotated[
        int | None,
        typer.Option(
            help="How many of the last buckets the bucket table lists (default: 30); 0 leaves the table out. "
            "--json has every bucket.",
            min=0,
        ),
    ] = None,
    chart: Annotated[Path | None, typer.Option(help="Also draw the chart to this PNG file.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """λ, μ, θ, τ, latency per stage, backlog, Little's law and a capacity forecast, from the DuckDB file."""
    from flowhook.metrics import Window, to_json_dict, to_rich
    from flowhook.metrics.render import DEFAULT_BUCKETS
    from flowhook.reporting import window_report
    from flowhook.spool import open_spool
    from flowhook.store import store_exists, store_from_config
    from flowhook.uptime import started_at

    settings = get_settings()
    if not store_exists(settings.store_config):
        raise fail(f"no DuckDB file at {settings.database}: nothing has been stored yet")
    now = datetime.now(UTC)
    end = parse_time("--until", until) or now
    start = parse_time("--since", since) or end - timedelta(minutes=minutes)
    try:
        window = Window(start, min(end, now), bucket or settings.report_bucket_seconds)
        result = window_report(
            store_from_config(settings.store_config),
            open_spool(settings),
            window,
            target_p99_seconds=target_p99 or settings.report_target_p99_seconds,
            now=now,
            heartbeat_max_age_seconds=settings.heartbeat_max_age_seconds,
            up_since=started_at(settings.data_dir),
            samples_dir=settings.samples_dir,
        )
    except ValueError as exc:
        raise fail(str(exc)) from None
    if chart is not None:
        from flowhook.metrics.chart import render_chart

        render_chart(result, chart)
    if as_json:
        print_json(to_json_dict(result))
    else:
        console.print(to_rich(result, buckets=DEFAULT_BUCKETS if buckets is None else buckets))
        if chart is not None:
            console.print(f"chart: {chart}")


class Format(StrEnum):
    """What `flowhook sql` prints or writes."""

    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"


_SUFFIXES = {".csv": Format.csv, ".json": Format.json, ".parquet": Format.parquet}


def _output_format(chosen: Format | None, as_json: bool, output: Path | None) -> Format:
    """The format from --format, --json (an alias of --format json) or --output's suffix; table by default."""
    if as_json and chosen not in (None, Format.json):
        raise fail(f"--json is --format json: give one of --json and --format {chosen}")
    fmt = Format.json if as_json else chosen
    if fmt is None and output is not None:
        fmt = _SUFFIXES.get(output.suffix.lower())
        if fmt is None:
            raise fail(f"--output {output}: give --format csv, json or parquet (none follows from its suffix)")
    fmt = fmt or Format.table
    if fmt is Format.table and output is not None:
        raise fail("--output writes csv, json or parquet: give --format csv, json or parquet")
    if fmt is Format.parquet and output is None:
        raise fail("--format parquet writes a binary file: give it --output PATH")
    return fmt


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="One SQL statement, e.g. SELECT type, count(*) FROM events GROUP BY 1")],
    output_format: Annotated[
        Format | None,
        typer.Option(
            "--format",
            help="table (the default), csv, json (a list of objects keyed by column) or parquet (needs --output).",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(help="Write the rows to this file (csv, json, parquet) instead of stdout; replaced if it exists."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The same as --format json.")] = False,
) -> None:
    """Run one read-only query on the store (SELECT, WITH, DESCRIBE, SHOW, EXPLAIN); anything that writes is refused.

    The rows as a table, or as csv, json or parquet, on stdout or in --output. JSON is a list of objects keyed by
    column name; csv and parquet are written by DuckDB from the rows.
    """
    import duckdb
    from rich.table import Table

    from flowhook.store import store_exists, store_from_config
    from flowhook.store.export import csv_text, write_rows
    from flowhook.store.read_only import NotReadOnly, read_only_statement

    fmt = _output_format(output_format, as_json, output)
    settings = get_settings()
    try:
        statement = read_only_statement(query)
    except (NotReadOnly, duckdb.Error) as exc:
        raise fail(str(exc)) from None
    if not store_exists(settings.store_config):
        raise fail(f"no DuckDB file at {settings.database}: nothing has been stored yet")
    try:
        # The store is held for the query alone: the rows are printed or written after it is released.
        with store_from_config(settings.store_config).read_only() as con:
            cursor = con.execute(statement)
            columns = [d[0] for d in cursor.description or []]
            if fmt in (Format.csv, Format.parquet):
                arrow = cursor.to_arrow_table()
            else:
                rows = cursor.fetchall()
    except duckdb.Error as exc:
        raise fail(explain(exc) or str(exc)) from None
    if fmt in (Format.json, Format.csv, Format.parquet) and len(set(columns)) < len(columns):
        option = "--json" if as_json else f"--format {fmt}"
        raise fail(f"{option} needs distinct column names, not {', '.join(columns)}: name them with AS")
    if fmt is Format.json:
        text = json_text([dict(zip(columns, row, strict=True)) for row in rows])
        if output is None:
            typer.echo(text)
        else:
            output.write_text(text + "\n", encoding="utf-8")
        return
    if fmt in (Format.csv, Format.parquet):
        try:
            if output is None:
                typer.echo(csv_text(arrow), nl=False)
            else:
                write_rows(arrow, output, file_format="csv" if fmt is Format.csv else "parquet")
        except duckdb.Error as exc:
            raise fail(f"cannot write {output or 'the rows'}: {exc}") from None
        return
    table = Table(*columns)
    for row in rows:
        table.add_row(*("NULL" if v is None else str(v) for v in row))
    console.print(table)


@app.command()
def status(
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 when the trigger path is unhealthy (for scripts and cron).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show batches per spool state, events stored per type, each type's deployment and triggers in Prefect, and
    whether the trigger path's heartbeat is fresh."""
    from rich.markup import escape
    from rich.table import Table

    from flowhook.spool import open_spool
    from flowhook.store import store_exists, store_from_config
    from flowhook.uptime import started_at
    from flowhook.worker.watchdog import check_heartbeat
    from flowhook.worker.watchdog import to_json_dict as heartbeat_dict

    settings = get_settings()
    spool = open_spool(settings)
    batches = spool.counts()
    events: dict[str, int] | None = None
    last = None
    if store_exists(settings.store_config):
        store = store_from_config(settings.store_config)
        events = dict(sorted(store.event_counts().items()))
        last = store.latest_heartbeat()
    heartbeat = check_heartbeat(
        last,
        now=datetime.now(UTC),
        max_age_seconds=settings.heartbeat_max_age_seconds,
        up_since=started_at(settings.data_dir),
    )
    types, unreachable = _type_deployments(settings)
    if as_json:
        print_json(
            {
                "spool": spool.url,
                "batches": batches,
                "events": events,
                "types": [row.to_json() for row in types] if types is not None else None,
                "prefect": {"api_url": settings.prefect_api_url, "error": unreachable},
                "trigger_path": heartbeat_dict(heartbeat),
            }
        )
    else:
        console.print(f"batches per state in the spool {spool.url}", highlight=False, soft_wrap=True)
        spooled = Table(*batches, box=None)
        for column in spooled.columns:
            column.justify = "right"
        spooled.add_row(*(f"{n:,}" for n in batches.values()))
        console.print(spooled)
        if events is None:
            console.print(f"\nno events stored yet: no DuckDB file at {settings.database}", highlight=False)
        else:
            console.print("\nevents stored per type")
            stored = Table("type", "events", box=None)
            stored.columns[1].justify = "right"
            for event_type, n in events.items():
                stored.add_row(escape(event_type), f"{n:,}")
            stored.add_row("all", f"{sum(events.values()):,}", style="bold")
            console.print(stored)
        _print_type_deployments(settings, types, unreachable)
        style = {"healthy": "green", "unhealthy": "bold red", "unknown": "yellow"}[heartbeat.status]
        console.print(f"\ntrigger path: [{style}]{escape(heartbeat.summary)}[/]")
    if check and heartbeat.status == "unhealthy":
        raise typer.Exit(1)


def _type_deployments(settings: Settings) -> tuple[list[TypeDeployment] | None, str | None]:
    """Each event type's deployment and triggers in Prefect, or None and why Prefect could not say."""
    import asyncio

    import httpx

    from flowhook.deployments import type_deployments
    from flowhook.events import load_catalog
    from flowhook.prefect_api import explain

    types = load_catalog(settings.event_modules).names
    try:
        return asyncio.run(type_deployments(settings.prefect_api_url, types)), None
    except TimeoutError:
        return None, "no answer in time"
    except (httpx.HTTPError, OSError) as exc:
        return None, explain(exc, settings.prefect_api_url)


def _print_type_deployments(settings: Settings, types: list[TypeDeployment] | None, unreachable: str | None) -> None:
    from rich.markup import escape
    from rich.table import Table

    console.print(f"\nevent types and their deployments at {settings.prefect_api_url}", highlight=False, soft_wrap=True)
    if types is None:
        console.print(f"[yellow]unknown: {escape(unreachable or '')}[/]", soft_wrap=True)
        return
    table = Table("type", "deployment", "triggers", box=None)
    for row in types:
        deployment = escape(row.deployment) if row.deployed else "[bold red]none[/] (flowhook deployments generate)"
        if row.deployed and row.paused:
            deployment += " [yellow](paused)[/]"
        triggers = ", ".join(escape(t.name) + ("" if t.enabled else " [yellow](disabled)[/]") for t in row.triggers)
        table.add_row(escape(row.event_type), deployment, triggers or ("[bold red]none[/]" if row.deployed else "-"))
    console.print(table)


@app.command()
def audit(
    as_json: JsonOpt = False,
    save: Annotated[
        bool, typer.Option("--save/--no-save", help="Keep the finding in the store, where the report looks for it.")
    ] = True,
) -> None:
    """Check that every acknowledged event in the spool's done batches is stored, once; exit 1 if any is not."""
    import duckdb
    from rich.markup import escape
    from rich.table import Table

    from flowhook.audit import run_audit, save_audit, to_json_dict
    from flowhook.spool import open_spool
    from flowhook.store import store_exists, store_from_config

    settings = get_settings()
    if not store_exists(settings.store_config):
        raise fail(f"no DuckDB file at {settings.database}: nothing has been stored yet")
    store = store_from_config(settings.store_config)
    try:
        found = run_audit(store, open_spool(settings))
        if save:
            save_audit(store, found)
    except duckdb.Error as exc:
        raise fail(explain(exc) or str(exc)) from None
    if as_json:
        print_json(to_json_dict(found))
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
