"""parse_delivery: one verified body in, typed events or a precise, machine-readable refusal out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from flowhook.events import Event, derive_event_id, load_catalog
from flowhook.gateway.deliveries import DeliveryError, parse_delivery

SIGNED_AT = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
RECEIVED = SIGNED_AT + timedelta(seconds=2)
BUILTIN = {"data_update", "scheduled_tick", "user_request"}


def request(**data: Any) -> dict[str, Any]:
    return {"type": "user_request", "data": {"user_id": "u1", "action": "search", **data}}


def parse(document: Any, *, delivery_id: str = "msg_1", **kwargs: Any) -> list[Event]:
    body = document if isinstance(document, bytes) else orjson.dumps(document)
    return parse_delivery(
        body,
        catalog=load_catalog(),
        source="shop",
        delivery_id=delivery_id,
        signed_at=SIGNED_AT,
        received=RECEIVED,
        **kwargs,
    )


def refusal(document: Any, **kwargs: Any) -> DeliveryError:
    with pytest.raises(DeliveryError) as caught:
        parse(document, **kwargs)
    return caught.value


def test_a_single_object_is_one_event() -> None:
    [event] = parse(request(path="/search"))
    assert event == Event(
        id=derive_event_id("shop", "msg_1"),
        type="user_request",
        source="shop",
        occurred=SIGNED_AT,
        received=RECEIVED,
        data={"user_id": "u1", "action": "search", "path": "/search", "amount_cents": None},
    )


def test_a_list_is_one_event_per_item_in_order() -> None:
    events = parse([request(user_id="a"), {"type": "data_update", "data": {"dataset": "d", "uri": "s3://b/k"}}])
    assert [e.type for e in events] == ["user_request", "data_update"]
    assert [e.id for e in events] == [derive_event_id("shop", "msg_1", 0), derive_event_id("shop", "msg_1", 1)]
    assert events[0].data["user_id"] == "a"
    assert events[1].data == {
        "dataset": "d",
        "uri": "s3://b/k",
        "rows": 0,
        "operation": "insert",
        "checksum": None,
        "size_bytes": None,
    }


@pytest.mark.parametrize(
    ("document", "expected_ids"),
    [
        (request(), [derive_event_id("shop", "msg_1")]),
        ({**request(), "id": "evt_9"}, [derive_event_id("shop", "evt_9")]),
        ([request()], [derive_event_id("shop", "msg_1", 0)]),
        ([request(), request()], [derive_event_id("shop", "msg_1", 0), derive_event_id("shop", "msg_1", 1)]),
        (
            [request(), {**request(), "id": "evt_9"}, request()],
            [
                derive_event_id("shop", "msg_1", 0),
                derive_event_id("shop", "evt_9"),
                derive_event_id("shop", "msg_1", 2),
            ],
        ),
    ],
)
def test_ids_come_from_the_delivery_id_and_index_or_the_items_own_id(document: Any, expected_ids: list[str]) -> None:
    assert [e.id for e in parse(document)] == expected_ids


def test_a_redelivery_gets_the_same_ids_and_another_delivery_new_ones() -> None:
    document = [request(user_id="a"), request(user_id="b")]
    first = [e.id for e in parse(document)]
    assert [e.id for e in parse(document)] == first
    assert set(first).isdisjoint(e.id for e in parse(document, delivery_id="msg_2"))


def test_an_items_own_id_survives_a_new_delivery_id() -> None:
    document = [{**request(), "id": "evt_9"}]
    assert parse(document)[0].id == parse(document, delivery_id="msg_2")[0].id


def test_the_same_id_in_another_source_is_another_event() -> None:
    body = orjson.dumps(request())
    kwargs: dict[str, Any] = {"catalog": load_catalog(), "delivery_id": "msg_1", "signed_at": SIGNED_AT}
    here = parse_delivery(body, source="shop", received=RECEIVED, **kwargs)
    there = parse_delivery(body, source="crm", received=RECEIVED, **kwargs)
    assert here[0].id != there[0].id
    assert there[0].source == "crm"


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (None, SIGNED_AT),
        ("2024-04-30T23:00:00Z", datetime(2024, 4, 30, 23, 0, tzinfo=UTC)),
        ("2024-05-01T01:00:00+02:00", datetime(2024, 4, 30, 23, 0, tzinfo=UTC)),
        ("2024-04-30T23:00:00", datetime(2024, 4, 30, 23, 0, tzinfo=UTC)),
        (1714518000, datetime(2024, 4, 30, 23, 0, tzinfo=UTC)),
    ],
)
def test_the_items_timestamp_is_when_it_occurred_else_the_signed_time(timestamp: Any, expected: datetime) -> None:
    item = request() if timestamp is None else {**request(), "timestamp": timestamp}
    [event] = parse(item)
    assert event.occurred == expected
    assert event.occurred.utcoffset() == timedelta(0)
    assert event.received == RECEIVED


def test_unknown_item_fields_are_ignored_and_unknown_data_fields_kept() -> None:
    [event] = parse({**request(campaign="spring"), "sender": "x"})
    assert event.data["campaign"] == "spring"
    assert "sender" not in event.data


@pytest.mark.parametrize("body", [b"", b"{", b"not json", b'{"type": "user_request",}', b"\xff"])
def test_invalid_json_is_400_invalid_json(body: bytes) -> None:
    error = refusal(body)
    assert (error.status, error.code) == (400, "invalid_json")
    assert "not valid JSON" in str(error)


def test_an_empty_list_is_422() -> None:
    error = refusal([])
    assert (error.status, error.code) == (422, "empty_delivery")


def test_too_many_events_is_413() -> None:
    error = refusal([request()] * 4, max_events=3)
    assert (error.status, error.code) == (413, "too_many_events")
    assert len(parse([request()] * 3, max_events=3)) == 3


def test_an_unknown_type_is_422_unknown_event_type_with_the_known_names() -> None:
    error = refusal({"type": "order_paid", "data": {}})
    assert (error.status, error.code) == (422, "unknown_event_type")
    [detail] = error.errors
    assert detail["index"] == 0
    assert detail["loc"] == ["type"]
    assert "'order_paid'" in detail["msg"]
    assert set(detail["known"]) >= BUILTIN
    assert detail["known"] == sorted(detail["known"])


@pytest.mark.parametrize(
    ("item", "loc"),
    [
        ({"type": "user_request", "data": {"action": "search"}}, ["data", "user_id"]),
        ({"type": "user_request", "data": {"user_id": "", "action": "search"}}, ["data", "user_id"]),
        (
            {"type": "user_request", "data": {"user_id": "u", "action": "x", "amount_cents": -5}},
            ["data", "amount_cents"],
        ),
        ({"type": "data_update", "data": {"dataset": "d", "uri": "u", "operation": "drop"}}, ["data", "operation"]),
        ({"type": "scheduled_tick", "data": {"schedule": "s", "tick": "later"}}, ["data", "tick"]),
        ({"type": "user_request"}, ["data"]),
        ({"type": "user_request", "data": [1, 2]}, ["data"]),
        ({"data": {"user_id": "u", "action": "a"}}, ["type"]),
        ({**request(), "timestamp": "yesterday"}, ["timestamp"]),
        ({**request(), "id": ""}, ["id"]),
    ],
)
def test_a_schema_violation_is_422_with_the_field_path_and_index(item: dict[str, Any], loc: list[str]) -> None:
    for document, index in ((item, 0), ([request(), request(), item], 2)):
        error = refusal(document)
        assert (error.status, error.code) == (422, "schema_violation")
        assert {"index": index, "loc": loc} in [{"index": e["index"], "loc": e["loc"]} for e in error.errors]
        assert all(e["msg"] for e in error.errors)


@pytest.mark.parametrize("item", [42, "user_request", None, [request()]])
def test_an_item_that_is_not_an_object_is_a_schema_violation(item: Any) -> None:
    error = refusal([request(), item])
    assert (error.status, error.code) == (422, "schema_violation")
    assert {e["index"] for e in error.errors} == {1}


def test_one_bad_item_rejects_the_whole_delivery_and_every_problem_is_listed() -> None:
    document = [request(), {"type": "user_request", "data": {"action": "a"}}, request(), {"type": "nope", "data": {}}]
    error = refusal(document)
    assert error.status == 422
    assert error.code == "schema_violation"  # mixed problems: the general code
    assert "2 of 4 events" in str(error)
    assert [(e["index"], e["loc"]) for e in error.errors] == [(1, ["data", "user_id"]), (3, ["type"])]


def test_a_single_bad_event_is_named_as_the_event() -> None:
    error = refusal({"type": "user_request", "data": {}})
    assert "event failed validation" in str(error)
    assert {tuple(e["loc"]) for e in error.errors} == {("data", "user_id"), ("data", "action")}
