"""Typed results: the `results_<type>` view's columns from a result model, and the views on both backends."""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field

from flowhook.events import Catalog, Event, EventData, EventType, load_catalog
from flowhook.events.builtin import UserRequestResult
from flowhook.spool import BatchRef
from flowhook.store import DuckLakeStore, EventStore
from flowhook.store.results import duckdb_type, results_columns, results_view_sql
from flowhook.worker import steps
from tests.factories import T0, make_event
from tests.store.backends import StoreSpec


class Colour(StrEnum):
    red = "red"


class Inner(BaseModel):
    x: int


@pytest.mark.parametrize(
    ("annotation", "kind"),
    [
        (str, "VARCHAR"),
        (int, "BIGINT"),
        (float, "DOUBLE"),
        (bool, "BOOLEAN"),
        (datetime, "TIMESTAMP"),
        (date, "DATE"),
        (Literal["high", "normal"], "VARCHAR"),
        (Literal[1, 2], "JSON"),
        (int | None, "BIGINT"),
        (None | datetime, "TIMESTAMP"),
        (Annotated[float, Field(ge=0)] | None, "DOUBLE"),
        (int | str, "JSON"),
        (list[int], "JSON"),
        (dict[str, Any], "JSON"),
        (Inner, "JSON"),
        (Colour, "JSON"),
        (Any, "JSON"),
    ],
    ids=str,
)
def test_duckdb_type_of_an_annotation(annotation: Any, kind: str) -> None:
    assert duckdb_type(annotation) == kind


class Everything(BaseModel):
    name: str
    count: int
    ratio: float | None = None
    flag: bool
    at: datetime
    day: date
    level: Literal["a", "b"]
    tags: list[str]


def test_the_views_columns_and_types_come_from_the_model() -> None:
    assert results_columns(Everything) == [
        ("event_id", "VARCHAR"),
        ("stored", "TIMESTAMP"),
        ("name", "VARCHAR"),
        ("count", "BIGINT"),
        ("ratio", "DOUBLE"),
        ("flag", "BOOLEAN"),
        ("at", "TIMESTAMP"),
        ("day", "DATE"),
        ("level", "VARCHAR"),
        ("tags", "JSON"),
    ]
    sql = results_view_sql("everything", Everything)
    assert sql.startswith("CREATE OR REPLACE VIEW results_everything AS")
    assert "FROM events WHERE type = 'everything' AND status = 'ok'" in sql
    assert "TRY_CAST(result->>'count' AS BIGINT) AS \"count\"" in sql
    assert "result->'tags' AS \"tags\"" in sql


@pytest.mark.parametrize("bad", ["Robert'); DROP TABLE events; --", "Upper", ""])
def test_a_type_name_that_is_no_identifier_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="must match"):
        results_view_sql(bad, Everything)


_ids = itertools.count()


def _process(store: EventStore, events: list[Event], *, catalog: Catalog | None = None) -> None:
    """The events through their handlers and into the store, as a worker step does."""
    batch = BatchRef(batch_id=f"b{next(_ids)}", event_type=events[0].type, count=len(events), sealed=T0)
    handled = steps.handle(events, catalog=catalog or load_catalog(), batch=batch, started=T0, flow_run_id="run-1")
    steps.store(store, handled, now=T0 + timedelta(seconds=5))


def _reopen(spec: StoreSpec, catalog: Catalog) -> EventStore:
    """The store opened afresh with `catalog`: a DuckLake is detached first, as a new process would find it."""
    store = spec.open(catalog=catalog)
    if isinstance(store, DuckLakeStore):
        store.close()
    return store


def test_results_user_request_returns_typed_values(store_spec: StoreSpec) -> None:
    store = _reopen(store_spec, load_catalog())
    requests = [
        {"user_id": "u1", "action": "Checkout", "amount_cents": 1999},
        {"user_id": "u2", "action": "search"},
        {"user_id": "", "action": "search"},  # fails its payload model: not a row of the view
    ]
    _process(store, [make_event(n, "user_request", data=data) for n, data in enumerate(requests, 1)])

    rows = store.query("SELECT * FROM results_user_request ORDER BY event_id", reports=True)
    stored = (T0 + timedelta(seconds=5)).replace(tzinfo=None)
    assert rows == [("e1", stored, "checkout", "high", 19.99), ("e2", stored, "search", "normal", 0.0)]
    described = store.query("DESCRIBE results_user_request", reports=True)
    assert [(column, kind) for column, kind, *_ in described] == results_columns(UserRequestResult)
    assert store.count_events(event_type="user_request") == 3


def test_a_type_added_later_gets_its_view_on_the_next_open(
    store_spec: StoreSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    everything = load_catalog()  # the registry is the process's: another test may have registered typed_order
    builtin = Catalog({name: everything.get(name) for name in ("user_request", "data_update", "scheduled_tick")})
    store = _reopen(store_spec, builtin)
    views = "SELECT view_name FROM duckdb_views() WHERE starts_with(view_name, 'results_') ORDER BY 1"
    assert [v for (v,) in store.query(views, reports=True)] == [
        "results_data_update",
        "results_scheduled_tick",
        "results_user_request",
    ]

    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "results_test_orders.py").write_text(
        "from datetime import datetime\n"
        "from pydantic import BaseModel\n"
        "from flowhook.events import EventData, event_type\n"
        "class Order(EventData):\n"
        "    order_id: str\n"
        "    cents: int\n"
        "class OrderTotal(BaseModel):\n"
        "    order_id: str\n"
        "    total: float\n"
        "    paid: bool\n"
        "    at: datetime\n"
        "@event_type('typed_order', Order, result=OrderTotal)\n"
        "def handle(data):\n"
        "    return {'order_id': data.order_id, 'total': data.cents / 100, 'paid': True, 'at': '2024-05-01T10:00Z'}\n"
    )
    catalog = load_catalog(["results_test_orders"])
    store = _reopen(store_spec, catalog)
    _process(store, [make_event(1, "typed_order", data={"order_id": "o-1", "cents": 250})], catalog=catalog)

    assert store.query('SELECT order_id, total, paid, "at" FROM results_typed_order', reports=True) == [
        ("o-1", 2.5, True, datetime(2024, 5, 1, 10, 0))
    ]
    assert ("results_typed_order",) in store.query(views, reports=True)


def test_a_changed_result_model_replaces_the_view(store_spec: StoreSpec) -> None:
    class Before(BaseModel):
        value: str

    class After(BaseModel):
        value: int
        note: str | None = None

    def catalog_with(model: type[BaseModel]) -> Catalog:
        changing = EventType(name="typed_changing", model=EventData, handler=dict, result=model)
        return Catalog({changing.name: changing})

    store = _reopen(store_spec, catalog_with(Before))
    assert store.query("DESCRIBE results_typed_changing", reports=True)[2][:2] == ("value", "VARCHAR")
    store = _reopen(store_spec, catalog_with(After))
    described = store.query("DESCRIBE results_typed_changing", reports=True)
    assert [(column, kind) for column, kind, *_ in described][2:] == [("value", "BIGINT"), ("note", "VARCHAR")]
