"""The event catalog and envelope: built-in types, their handlers, stable ids, the frozen UTC `Event`."""

from __future__ import annotations

import sys
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from flowhook.events import (
    Catalog,
    Event,
    EventData,
    Result,
    UnknownEventType,
    derive_event_id,
    event_type,
    load_catalog,
    utc,
)
from flowhook.events.builtin import DataUpdate, ScheduledTick, UserRequest, UserRequestResult, handle_user_request

BUILTIN = {"user_request": UserRequest, "data_update": DataUpdate, "scheduled_tick": ScheduledTick}
T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def write_module(folder: Path, name: str, source: str) -> str:
    (folder / f"{name}.py").write_text(source)
    return name


# --- the built-in types --------------------------------------------------------------------------------


def test_builtin_types_load_with_their_models() -> None:
    catalog = load_catalog()
    assert set(BUILTIN) <= set(catalog.names)
    assert catalog.names == sorted(catalog.names) == list(catalog)
    for name, model in BUILTIN.items():
        assert name in catalog
        assert catalog.get(name).name == name
        assert catalog.get(name).model is model
    assert (
        catalog.get("user_request").description
        == "A user asked the product for something (a page, a search, a purchase)."
    )


def test_an_unknown_type_is_not_in_the_catalog_and_get_names_the_known_ones() -> None:
    catalog = load_catalog()
    assert "order_paid" not in catalog
    with pytest.raises(UnknownEventType, match=r"'order_paid'.*user_request") as caught:
        catalog.get("order_paid")
    assert all(name in str(caught.value) for name in BUILTIN)


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        (
            "user_request",
            {"user_id": "u1", "action": "search"},
            {"action": "search", "priority": "normal", "amount": 0.0},
        ),
        (
            "user_request",
            {"user_id": "u1", "action": " Checkout ", "amount_cents": 1250},
            {"action": "checkout", "priority": "high", "amount": 12.5},
        ),
        (
            "user_request",
            {"user_id": "u1", "action": "PAYMENT"},
            {"action": "payment", "priority": "high", "amount": 0.0},
        ),
        (
            "user_request",
            {"user_id": "u1", "action": "cancel"},
            {"action": "cancel", "priority": "high", "amount": 0.0},
        ),
        (
            "data_update",
            {"dataset": "orders", "uri": "s3://bucket/key.parquet", "rows": 10},
            {"dataset": "orders", "row_delta": 10, "scheme": "s3"},
        ),
        (
            "data_update",
            {"dataset": "orders", "uri": "/data/orders.parquet", "rows": 7, "operation": "delete"},
            {"dataset": "orders", "row_delta": -7, "scheme": "file"},
        ),
        (
            "data_update",
            {"dataset": "d", "uri": "gs://b/o", "rows": 3, "operation": "update"},
            {"dataset": "d", "row_delta": 3, "scheme": "gs"},
        ),
        ("data_update", {"dataset": "d", "uri": "file.csv"}, {"dataset": "d", "row_delta": 0, "scheme": "file"}),
        (
            "scheduled_tick",
            {"schedule": "hourly", "tick": "2024-05-01T10:30:00Z"},
            {"schedule": "hourly", "minute_of_day": 630},
        ),
        (
            "scheduled_tick",
            {"schedule": "nightly", "tick": "2024-05-01T00:00:00Z"},
            {"schedule": "nightly", "minute_of_day": 0},
        ),
        (
            "scheduled_tick",
            {"schedule": "late", "tick": "2024-05-01T23:59:00Z"},
            {"schedule": "late", "minute_of_day": 1439},
        ),
    ],
)
def test_builtin_handlers_return_the_documented_results(name: str, data: dict[str, Any], expected: Result) -> None:
    assert dict(load_catalog().get(name).handle(data)) == expected


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("user_request", {"user_id": "", "action": "search"}),
        ("user_request", {"action": "search"}),
        ("user_request", {"user_id": "u", "action": "buy", "amount_cents": -1}),
        ("data_update", {"dataset": "d", "uri": "s3://b/k", "operation": "truncate"}),
        ("data_update", {"dataset": "d", "uri": "s3://b/k", "rows": -1}),
        ("scheduled_tick", {"schedule": "hourly", "tick": "not a time"}),
    ],
)
def test_handle_revalidates_the_payload_against_the_model(name: str, data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        load_catalog().get(name).handle(data)


def test_event_data_keeps_unknown_fields() -> None:
    model = UserRequest.model_validate({"user_id": "u", "action": "search", "campaign": "spring"})
    assert model.model_dump()["campaign"] == "spring"


def test_user_modules_register_their_types(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    module = write_module(
        tmp_path,
        "catalog_test_user_events",
        "from flowhook.events import EventData, event_type\n"
        "class OrderPaid(EventData):\n"
        "    order_id: str\n"
        "@event_type('catalog_test_order_paid', OrderPaid)\n"
        "def handle(data):\n"
        "    return {'order': data.order_id}\n",
    )
    assert "catalog_test_order_paid" not in load_catalog()
    catalog = load_catalog([module])
    assert "catalog_test_order_paid" in catalog
    assert set(BUILTIN) <= set(catalog.names)
    assert dict(catalog.get("catalog_test_order_paid").handle({"order_id": "o-1"})) == {"order": "o-1"}


def test_a_catalog_is_a_snapshot_of_the_registry() -> None:
    catalog = Catalog({})
    assert catalog.names == []
    with pytest.raises(UnknownEventType, match=r"known types: $"):
        catalog.get("user_request")


# --- registration rules --------------------------------------------------------------------------------


class _Payload(EventData):
    value: int


@pytest.mark.parametrize(
    "name",
    ["", "UserRequest", "user-request", "user request", "user.request", "1st_type", "_private", "a" * 65, "ünïcode"],
)
def test_an_invalid_type_name_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="must match"):
        event_type(name, _Payload)
    assert name not in load_catalog()


@pytest.mark.parametrize("name", ["a", "a" * 64, "order_paid_v2", "x9"])
def test_a_valid_type_name_is_accepted(name: str) -> None:
    register = event_type(name, _Payload)  # not applied: nothing is registered
    assert callable(register)
    assert name not in load_catalog()


def test_registering_a_different_model_under_an_existing_name_raises() -> None:
    with pytest.raises(
        ValueError, match=r"'user_request' is already registered by flowhook.events.builtin.UserRequest"
    ):
        event_type("user_request", _Payload)(lambda data: {})
    catalog = load_catalog()
    assert catalog.get("user_request").model is UserRequest
    assert catalog.get("user_request").handler is handle_user_request


def test_registering_the_same_model_again_is_harmless() -> None:
    """As a module imported twice does: the same declaration, result model and policies included."""
    declared = load_catalog().get("user_request")
    again = event_type("user_request", UserRequest, result=UserRequestResult, size=declared.size)
    assert again(handle_user_request) is handle_user_request
    assert load_catalog().get("user_request") == declared
    assert declared.result is UserRequestResult


def test_a_different_model_with_the_same_class_name_from_another_module_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    template = (
        "from flowhook.events import EventData, event_type\n"
        "class Payload(EventData):\n"
        "    {field}: str\n"
        "@event_type('catalog_test_shadowed', Payload)\n"
        "def handle(data):\n"
        "    return {{}}\n"
    )
    first = write_module(tmp_path, "catalog_test_team_a", template.format(field="order_id"))
    second = write_module(tmp_path, "catalog_test_team_b", template.format(field="invoice_no"))
    load_catalog([first])
    try:
        with pytest.raises(ValueError, match="already registered"):
            load_catalog([second])
    finally:
        sys.modules.pop(second, None)
    assert "order_id" in load_catalog().get("catalog_test_shadowed").model.model_fields


# --- event ids -------------------------------------------------------------------------------------------


def test_derive_event_id_is_stable_across_calls_and_machines() -> None:
    first = derive_event_id("shop", "msg_1", 0)
    assert first == derive_event_id("shop", "msg_1", 0)
    assert uuid.UUID(first).version == 5
    # Pinned: a changed namespace or key layout would give redeliveries new ids after an upgrade.
    assert derive_event_id("shop", "msg_1") == str(
        uuid.uuid5(uuid.UUID("6f1c3a52-8f0e-4f6e-9d43-2b7c5e1a9f10"), "shop\x1fmsg_1")
    )


def test_derive_event_id_is_distinct_per_source_delivery_and_index() -> None:
    keys = [
        (source, delivery, index)
        for source in ("shop", "crm", "shop2")
        for delivery in ("msg_1", "msg_2", "msg_10")
        for index in (None, 0, 1, 2, 10)
    ]
    ids = {derive_event_id(source, delivery, index) for source, delivery, index in keys}
    assert len(ids) == len(keys)


# --- the envelope ----------------------------------------------------------------------------------------


def make_event(**overrides: Any) -> Event:
    fields: dict[str, Any] = {
        "id": "e1",
        "type": "user_request",
        "source": "shop",
        "occurred": T0,
        "received": T0 + timedelta(seconds=1),
        "data": {"user_id": "u", "action": "search"},
    }
    return Event(**(fields | overrides))


@pytest.mark.parametrize("field", ["id", "type", "source", "occurred", "received", "data"])
def test_the_event_is_frozen(field: str) -> None:
    event = make_event()
    with pytest.raises(ValidationError, match="frozen"):
        setattr(event, field, getattr(make_event(id="other", data={}), field))
    assert event == make_event()


def test_events_compare_by_value() -> None:
    assert make_event() == make_event()
    assert make_event() != make_event(id="e2")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))), datetime(2024, 5, 1, 10, 0, tzinfo=UTC)),
        (datetime(2024, 5, 1, 5, 0, tzinfo=timezone(timedelta(hours=-5))), datetime(2024, 5, 1, 10, 0, tzinfo=UTC)),
        (datetime(2024, 5, 1, 10, 0), datetime(2024, 5, 1, 10, 0, tzinfo=UTC)),
        (datetime(2024, 5, 1, 10, 0, tzinfo=UTC), datetime(2024, 5, 1, 10, 0, tzinfo=UTC)),
        ("2024-05-01T12:00:00+02:00", datetime(2024, 5, 1, 10, 0, tzinfo=UTC)),
        ("2024-05-01T10:00:00Z", datetime(2024, 5, 1, 10, 0, tzinfo=UTC)),
        ("2024-05-01T10:00:00", datetime(2024, 5, 1, 10, 0, tzinfo=UTC)),
    ],
)
def test_the_event_normalises_its_times_to_utc(given: datetime | str, expected: datetime) -> None:
    event = make_event(occurred=given, received=given)
    for value in (event.occurred, event.received):
        assert value == expected
        assert value.utcoffset() == timedelta(0)
        assert value.hour == 10  # the wall clock is UTC's, not the sender's


@pytest.mark.parametrize(
    ("given", "expected_hour"),
    [
        (datetime(2024, 1, 1, 3, 0), 3),
        (datetime(2024, 1, 1, 3, 0, tzinfo=timezone(timedelta(hours=3))), 0),
        (datetime(2024, 1, 1, 3, 0, tzinfo=timezone(timedelta(hours=-9, minutes=-30))), 12),
    ],
)
def test_utc_keeps_the_instant_and_makes_it_aware(given: datetime, expected_hour: int) -> None:
    value = utc(given)
    assert value.tzinfo is UTC
    assert value.hour == expected_hour
    if given.tzinfo is not None:
        assert value == given
