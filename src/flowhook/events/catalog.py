"""The event catalog: one pydantic model and one handler per event type, looked up by name.

`load_catalog` imports the modules that declare types (see `registry`) and collects what they registered.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from typing import Any

from flowhook.events.registry import EventData, EventResult, EventType, Result, event_type, registered

# Declaring types is `registry`'s; these names stay importable here, where user modules and tests import them.
__all__ = [
    "Catalog",
    "EventData",
    "EventResult",
    "EventType",
    "Result",
    "UnknownEventType",
    "event_type",
    "load_catalog",
]


class UnknownEventType(LookupError):
    """No event type of that name is registered."""


class Catalog:
    """The registered event types, after importing the built-ins and any user modules."""

    def __init__(self, types: Mapping[str, EventType]) -> None:
        self._types = dict(types)

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def __iter__(self) -> Any:
        return iter(sorted(self._types))

    def get(self, name: str) -> EventType:
        try:
            return self._types[name]
        except KeyError:
            known = ", ".join(sorted(self._types))
            raise UnknownEventType(f"unknown event type {name!r}; known types: {known}") from None

    @property
    def names(self) -> list[str]:
        return sorted(self._types)


def load_catalog(modules: Iterable[str] = ()) -> Catalog:
    """Import the built-in event types and `modules` (which register theirs), and return the catalog."""
    importlib.import_module("flowhook.events.builtin")
    for module in modules:
        importlib.import_module(module)
    return Catalog(registered())
