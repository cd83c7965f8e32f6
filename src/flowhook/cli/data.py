"""Commands that read the DuckDB file and the spool: report, sql, status."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from flowhook.cli._app import (
    app,
    console,
    fail,
)
from flowhook.settings import get_settings

if TYPE_CHECKING:
    pass


MinutesOpt = Annotated[float, typer.Option(help="Report on the last N minutes.", min=0.01)]


@app.command()
def report(minutes: MinutesOpt = 60.0, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Print λ, μ, θ, τ and measured latency per event type from the DuckDB file."""
    from flowhook.metrics import to_json_dict, to_rich_table
    from flowhook.reporting import window_report
    from flowhook.store import DuckDBStore, StoreLockTimeout

    settings = get_settings()
    if not settings.database.exists():
        raise fail(f"no DuckDB file at {settings.database}: nothing has been stored yet")
    try:
        result = window_report(
            DuckDBStore(settings.database, lock_timeout=settings.lock_timeout_seconds), minutes=minutes
        )
    except StoreLockTimeout as exc:
        raise fail(str(exc)) from None
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
        raise fail(f"no DuckDB file at {settings.database}: nothing has been stored yet")
    store = DuckDBStore(settings.database, lock_timeout=settings.lock_timeout_seconds)
    try:
        with store.connect() as con:
            cursor = con.execute(query)
            columns = [d[0] for d in cursor.description or []]
            rows = cursor.fetchall()
    except duckdb.Error as exc:
        raise fail(str(exc)) from None
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
