"""Typed results: for each event type with a result model, a `results_<type>` view with a column per field.

A view over `events`, not a table of its own: `CAST(result->>'field' AS type)` per field, over the type's
ok rows. Nothing is written twice, so the store's one-row-per-id rule, the replacement of a failed row by its
retry, and the DuckLake backend's locking and conflict retries need nothing more; a result model that changes
re-types every stored row at once, with no migration; and `events.result` stays the one copy of the data. The
cost is a JSON extraction per field on each read, which DuckDB does at millions of rows a second; a type that
outgrows that can be given a materialised table later without changing the view's name or columns.

Values are cast with `TRY_CAST`: a row stored before its model changed (or before the type had one) reads NULL
where it no longer fits, instead of failing every query on the view. The JSON itself is untouched in `events`.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from datetime import date, datetime
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import duckdb
from pydantic import BaseModel

from flowhook.events.catalog import Catalog
from flowhook.events.registry import RESERVED_RESULT_FIELDS, TYPE_NAME

KEY_COLUMNS = (("event_id", "VARCHAR"), ("stored", "TIMESTAMP"))
"""The columns every results view starts with: the event's id (one row per id) and when it was stored."""

_SCALARS: dict[Any, str] = {
    str: "VARCHAR",
    int: "BIGINT",
    float: "DOUBLE",
    bool: "BOOLEAN",
    datetime: "TIMESTAMP",  # `EventType.handle` stores result times in UTC: naive UTC here, as everywhere
    date: "DATE",
}


def duckdb_type(annotation: Any) -> str:
    """The DuckDB type a result field is read as: str, int, float, bool, datetime, date and `Literal[str, …]` map to
    their column type, `X | None` to X's; anything else (lists, models, unions, enums) stays JSON."""
    if get_origin(annotation) is Annotated:
        return duckdb_type(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        present = [arg for arg in get_args(annotation) if arg is not type(None)]
        return duckdb_type(present[0]) if len(present) == 1 else "JSON"
    if get_origin(annotation) is Literal:
        values = get_args(annotation)
        return "VARCHAR" if values and all(isinstance(value, str) for value in values) else "JSON"
    return _SCALARS.get(annotation, "JSON")


def results_columns(model: type[BaseModel]) -> list[tuple[str, str]]:
    """The view's columns, in order, with their DuckDB types: the key columns, then one per field of `model`."""
    taken = RESERVED_RESULT_FIELDS & set(model.model_fields)
    if taken:
        raise ValueError(f"result model {model.__name__} may not have a field named {', '.join(sorted(taken))}")
    return [*KEY_COLUMNS, *((name, duckdb_type(field.annotation)) for name, field in model.model_fields.items())]


def view_name(event_type: str) -> str:
    """`results_<type>`; the type name is checked again, since it is spliced into SQL."""
    if not TYPE_NAME.match(event_type):
        raise ValueError(f"event type name {event_type!r} must match {TYPE_NAME.pattern}")
    return f"results_{event_type}"


def results_view_sql(event_type: str, model: type[BaseModel]) -> str:
    """`CREATE OR REPLACE VIEW results_<type>`: the type's ok events, one row each, a typed column per result field."""
    fields = [
        f"result->'{name}' AS \"{name}\"" if kind == "JSON" else f"TRY_CAST(result->>'{name}' AS {kind}) AS \"{name}\""
        for name, kind in results_columns(model)[len(KEY_COLUMNS) :]
    ]
    select = ",\n  ".join(["id AS event_id", "stored", *fields])
    return (
        f"CREATE OR REPLACE VIEW {view_name(event_type)} AS\nSELECT\n  {select}\n"
        f"FROM events WHERE type = '{event_type}' AND status = 'ok'"
    )


def result_models(catalog: Catalog | None) -> dict[str, type[BaseModel]]:
    """The result model of each catalog type that has one, by type name (none without a catalog)."""
    if catalog is None:
        return {}
    declared = {name: catalog.get(name).result for name in catalog.names}
    return {name: model for name, model in declared.items() if model is not None}


def ensure_results_views(con: duckdb.DuckDBPyConnection, models: Mapping[str, type[BaseModel]]) -> None:
    """Create each type's results view, or replace it when its columns differ from the model's (the model changed);
    a view that already matches is left alone, so an open writes nothing once they are in place.

    Views of types no longer given are kept: another process may know types this one does not load.
    """
    if not models:
        return
    have: dict[str, list[tuple[str, str]]] = {}
    for table, column, kind in con.execute(
        "SELECT table_name, column_name, data_type FROM duckdb_columns() "
        "WHERE database_name = current_database() AND schema_name = 'main' AND starts_with(table_name, 'results_') "
        "ORDER BY table_name, column_index"
    ).fetchall():
        have.setdefault(table, []).append((column, kind))
    for event_type, model in sorted(models.items()):
        if have.get(view_name(event_type)) != results_columns(model):
            con.execute(results_view_sql(event_type, model))
