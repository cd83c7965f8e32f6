"""Result models in the declaration: a handler's result is checked against its type's model before it is stored."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field

from flowhook.events import Catalog, EventData, EventResult, ResultMismatch, event_type, load_catalog
from flowhook.events.builtin import DataUpdateResult, ScheduledTickResult, UserRequestResult
from flowhook.events.registry import EventType, _never_time
from flowhook.spool import BatchRef
from flowhook.worker import steps
from tests.factories import T0, make_event

RESULTS_PROBE = "result_model_probe"


class Probe(EventData):
    """Says what its handler should return."""

    returns: dict[str, Any] = Field(description="The handler's result, as given.")


class ProbeResult(EventResult):
    """A count and when it was taken."""

    count: int = Field(description="A count.")
    at: datetime | None = Field(default=None, description="When, if known.")


@event_type(RESULTS_PROBE, Probe, result=ProbeResult)
def handle_probe(data: Probe) -> dict[str, Any]:
    return data.returns


def _handle(*returns: dict[str, Any]) -> list[tuple[str, dict[str, Any] | None, str | None]]:
    events = [make_event(n, RESULTS_PROBE, data={"returns": r}) for n, r in enumerate(returns)]
    batch = BatchRef(batch_id="b", event_type=RESULTS_PROBE, count=len(events), sealed=T0)
    handled = steps.handle(events, catalog=load_catalog(), batch=batch, started=T0, flow_run_id=None)
    return [(e.status, None if e.result is None else dict(e.result), e.error) for e in handled]


def test_a_result_that_fits_is_stored_as_the_model_dumps_it() -> None:
    assert _handle({"count": "3"}, {"count": 4, "at": "2024-05-01T12:00:00+02:00"}) == [
        ("ok", {"count": 3, "at": None}, None),
        ("ok", {"count": 4, "at": "2024-05-01T10:00:00Z"}, None),  # times in UTC, as the store keeps them
    ]


@pytest.mark.parametrize(
    ("returns", "problem"),
    [
        ({"count": "many"}, "count: Input should be a valid integer"),
        ({}, "count: Field required"),
        ({"count": 1, "extra": True}, "extra: Extra inputs are not permitted"),
    ],
)
def test_a_result_that_does_not_fit_its_model_fails_the_event_as_a_raising_handler_does(
    returns: dict[str, Any], problem: str
) -> None:
    (failed, ok) = _handle(returns, {"count": 1})
    assert failed[:2] == ("failed", None)
    assert failed[2] is not None
    assert failed[2].startswith(
        f"{ResultMismatch.__name__}: the {RESULTS_PROBE} handler's result does not fit ProbeResult: "
    )
    assert problem in failed[2] and "\n" not in failed[2]
    assert ok == ("ok", {"count": 1, "at": None}, None)


def test_a_handler_may_return_the_result_model_itself() -> None:
    result = load_catalog().get("user_request").handle({"user_id": "u", "action": " Payment ", "amount_cents": 995})
    assert result == {"action": "payment", "priority": "high", "amount": 9.95}


def test_the_builtin_types_declare_their_result_models_with_a_description_per_field() -> None:
    catalog = load_catalog()
    declared = {name: catalog.get(name).result for name in ("user_request", "data_update", "scheduled_tick")}
    assert declared == {
        "user_request": UserRequestResult,
        "data_update": DataUpdateResult,
        "scheduled_tick": ScheduledTickResult,
    }
    for model in declared.values():
        assert model is not None
        assert all(field.description for field in model.model_fields.values()), model


def test_a_type_without_a_result_model_stores_what_its_handler_returns() -> None:
    class Free(EventData):
        pass

    @event_type("result_model_free", Free)
    def handle(data: Free) -> dict[str, Any]:
        return {"anything": [1, 2]}

    assert Catalog({"x": load_catalog().get("result_model_free")}).get("x").handle({}) == {"anything": [1, 2]}


def test_a_result_model_may_not_take_the_views_key_columns() -> None:
    class Clashing(BaseModel):
        stored: bool

    with pytest.raises(ValueError, match="may not have a field named stored"):
        event_type("result_model_clash", Probe, result=Clashing)


class ProbeResultWithTime(ProbeResult):
    """A result model's subclass a handler may return: its own fields are looked at for times too."""

    seen: datetime = Field(description="When it was seen.")


@pytest.mark.parametrize(
    ("annotation", "never"),
    [
        (str, True),
        (int | None, True),
        (Literal["high", "normal"], True),
        (Annotated[float, Field(ge=0)], True),
        (datetime, False),
        (datetime | None, False),
        (Any, False),
        (list[str], False),
        (Literal["a"] | datetime, False),
    ],
)
def test_only_annotations_that_admit_no_datetime_are_skipped(annotation: Any, never: bool) -> None:
    assert _never_time(annotation) is never


def test_the_builtin_results_hold_no_times_and_the_probe_may() -> None:
    catalog = load_catalog()
    assert not any(catalog.get(name)._result_may_hold_times for name in ("user_request", "data_update"))
    assert catalog.get(RESULTS_PROBE)._result_may_hold_times


def test_a_subclass_returned_has_its_times_in_utc_too() -> None:
    kind = EventType(
        name="subclass_probe",
        model=Probe,
        handler=lambda _: ProbeResultWithTime(count=1, seen="2024-05-01T12:00:00+02:00"),
        result=EventResult,  # no field that may hold a time, but the subclass returned has one
    )
    assert not kind._result_may_hold_times
    assert kind.handle({"returns": {}})["seen"] == "2024-05-01T10:00:00Z"
