"""`flowhook.emit`: send events from scripts and other flows through the gateway, like any sender,
so they get the same validation, the same durable inbox and the same batching."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from flowhook.settings import Settings, get_settings
from flowhook.sources.pool import LocalSink
from flowhook.sources.sink import DeliveryFailed

SOURCE = "emit"


class EmitError(ValueError):
    """The gateway refused the events; `errors` says which field of which event, and why."""

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


def local_sink(settings: Settings, source: str) -> LocalSink:
    """A sink into this machine's gateway, signed as `source`, over the process's shared connections."""
    return LocalSink(settings, source)


def item(
    event_type: str, data: Mapping[str, Any], *, id: str | None = None, timestamp: datetime | None = None
) -> dict[str, Any]:
    """One event as the gateway takes it."""
    entry: dict[str, Any] = {"type": event_type, "data": dict(data)}
    if id is not None:
        entry["id"] = id
    if timestamp is not None:
        entry["timestamp"] = timestamp.isoformat()
    return entry


def emit_many(
    items: Sequence[Mapping[str, Any]], *, settings: Settings | None = None, source: str = SOURCE
) -> list[str]:
    """Deliver several events at once; returns their ids once they are durable. All or none. Thread-safe:
    every call shares the process's keep-alive connections and resolved keys."""
    try:
        return LocalSink(settings or get_settings(), source).deliver(items)
    except DeliveryFailed as exc:
        errors = exc.body.get("errors") if isinstance(exc.body, dict) else None
        raise EmitError(str(exc), errors or []) from None


def emit(
    event_type: str,
    data: Mapping[str, Any],
    *,
    id: str | None = None,
    timestamp: datetime | None = None,
    settings: Settings | None = None,
    source: str = SOURCE,
) -> str:
    """Deliver one event; returns its id once it is durable. A given `id` makes a resend a no-op."""
    [event_id] = emit_many([item(event_type, data, id=id, timestamp=timestamp)], settings=settings, source=source)
    return event_id
