"""Turn one verified delivery body into typed events, or say precisely what is wrong with it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flowhook.events import Catalog, Event, derive_event_id
from flowhook.events.envelope import utc
from flowhook.gateway.bodies import BodyError, parse_json


class DeliveryItem(BaseModel):
    """One event as senders write it (the Standard Webhooks payload shape)."""

    model_config = ConfigDict(extra="ignore")

    type: str = Field(description="Event type name from the catalog.")
    data: dict[str, Any] = Field(description="The event's payload, checked against the type's model.")
    timestamp: datetime | None = Field(default=None, description="When it happened; else the signed time.")
    id: str | None = Field(default=None, min_length=1, description="Sender's id for the event, if any.")


class DeliveryError(ValueError):
    """A delivery that cannot become events; `code` is machine-readable, the message is for people."""

    def __init__(self, status: int, code: str, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.errors = errors or []


def parse_delivery(
    body: bytes,
    *,
    catalog: Catalog,
    source: str,
    delivery_id: str,
    signed_at: datetime,
    received: datetime,
    max_events: int = 10_000,
) -> list[Event]:
    """Validate a delivery (one event object or a list of them) as a whole: all events or an error."""
    items, single = json_items(body)
    return validate_items(
        items,
        single=single,
        catalog=catalog,
        source=source,
        delivery_id=delivery_id,
        signed_at=signed_at,
        received=received,
        max_events=max_events,
    )


def json_items(body: bytes) -> tuple[list[Any], bool]:
    """The items of a JSON body, and whether it was a single object rather than a list."""
    try:
        document = parse_json(body)
    except BodyError as exc:
        raise DeliveryError(400, exc.code, str(exc)) from None
    return (document, False) if isinstance(document, list) else ([document], True)


def validate_items(
    items: list[Any],
    *,
    single: bool,
    catalog: Catalog,
    source: str,
    delivery_id: str,
    signed_at: datetime,
    received: datetime,
    max_events: int = 10_000,
) -> list[Event]:
    """Items in `DeliveryItem` shape → events; all or an error listing every bad field.

    Event ids derive from the item's own `id`, else from the delivery id (and the item's position
    when the delivery is a list), so a redelivery maps to the same ids.
    """
    if not items:
        raise DeliveryError(422, "empty_delivery", "The delivery holds no events.")
    if len(items) > max_events:
        raise DeliveryError(413, "too_many_events", f"A delivery may hold at most {max_events} events.")
    events: list[Event] = []
    errors: list[dict[str, Any]] = []
    for index, raw in enumerate(items):
        try:
            item = DeliveryItem.model_validate(raw)
        except ValidationError as exc:
            errors += _field_errors(exc, index, prefix=())
            continue
        if item.type not in catalog:
            errors.append(
                {
                    "index": index,
                    "loc": ["type"],
                    "msg": f"unknown event type {item.type!r}",
                    "known": catalog.names,
                }
            )
            continue
        try:
            data = catalog.get(item.type).model.model_validate(item.data)
        except ValidationError as exc:
            errors += _field_errors(exc, index, prefix=("data",))
            continue
        key = item.id or delivery_id
        # Every field is checked already: constructed, not validated again (the times made UTC, as Event does).
        events.append(
            Event.model_construct(
                id=derive_event_id(source, key, None if (single or item.id) else index),
                type=item.type,
                source=source,
                occurred=utc(item.timestamp or signed_at),
                received=utc(received),
                data=data.model_dump(mode="json"),
            )
        )
    if errors:
        codes = {"unknown_event_type" if "known" in e else "schema_violation" for e in errors}
        code = codes.pop() if len(codes) == 1 else "schema_violation"
        noun = "event" if len(items) == 1 else f"{len({e['index'] for e in errors})} of {len(items)} events"
        raise DeliveryError(422, code, f"The delivery was rejected: {noun} failed validation.", errors)
    return events


def _field_errors(exc: ValidationError, index: int, prefix: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{"index": index, "loc": [*prefix, *map(str, err["loc"])], "msg": err["msg"]} for err in exc.errors()]
