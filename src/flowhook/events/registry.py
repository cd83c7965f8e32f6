"""Declaring event types: the payload base model, the `@event_type` decorator and the registry it fills.

Modules that declare types (`builtin`, a user's module) import this; the catalog reads what they registered.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

TYPE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class EventData(BaseModel):
    """Base of every event type's payload model: lenient, unknown fields are kept."""

    model_config = ConfigDict(extra="allow")


Result = Mapping[str, Any]
M = TypeVar("M", bound=EventData)
Handler = Callable[[M], Result]


@dataclass(frozen=True)
class EventType:
    """An event type: its name, payload model and the handler its worker flow runs per event."""

    name: str
    model: type[EventData]
    handler: Callable[[Any], Result]

    @property
    def description(self) -> str:
        return (self.model.__doc__ or self.name).strip().splitlines()[0]

    def handle(self, data: Mapping[str, Any]) -> Result:
        """Run the handler on a stored payload (re-validated, so the handler sees its model)."""
        return self.handler(self.model.model_validate(data))


_REGISTRY: dict[str, EventType] = {}


def event_type(name: str, model: type[M]) -> Callable[[Handler[M]], Handler[M]]:
    """Register `model` and the decorated handler as event type `name`."""
    if not TYPE_NAME.match(name):
        raise ValueError(f"event type name {name!r} must match {TYPE_NAME.pattern}")

    def register(handler: Handler[M]) -> Handler[M]:
        existing = _REGISTRY.get(name)
        # The same module imported twice re-registers harmlessly; another model under the name is a mistake.
        if existing is not None and _origin(existing.model) != _origin(model):
            raise ValueError(f"event type {name!r} is already registered by {_origin(existing.model)}")
        _REGISTRY[name] = EventType(name=name, model=model, handler=handler)
        return handler

    return register


def registered() -> Mapping[str, EventType]:
    """The event types registered so far, by name."""
    return _REGISTRY


def _origin(model: type[EventData]) -> str:
    return f"{model.__module__}.{model.__qualname__}"
