"""Declaring event types: the payload base model, the `@event_type` decorator and the registry it fills.

Modules that declare types (`builtin`, a user's module) import this; the catalog reads what they registered.
A declaration is the whole type: model, handler and the policies its deployment is generated with
(`flowhook deployments generate` writes them into prefect.yaml and deployments/ecs/prefect.yaml).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from flowhook.events.policies import TaskSize

TYPE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class EventData(BaseModel):
    """Base of every event type's payload model: lenient, unknown fields are kept."""

    model_config = ConfigDict(extra="allow")


Result = Mapping[str, Any]
M = TypeVar("M", bound=EventData)
Handler = Callable[[M], Result]


@dataclass(frozen=True)
class EventType:
    """An event type: its name, payload model, the handler its worker flow runs per event, and its policies."""

    name: str
    model: type[EventData]
    handler: Callable[[Any], Result]
    size: TaskSize | None = None
    """Fargate size of its worker runs on the ECS pool; None takes the pool's default."""
    deployment_description: str | None = None
    """Its deployment's description in prefect.yaml; None says what it processes, from the model's docstring."""
    concurrency_limit: int | None = None
    """At most this many of its worker runs at once (the deployment's `concurrency_limit`); None: no limit."""

    @property
    def description(self) -> str:
        return (self.model.__doc__ or self.name).strip().splitlines()[0]

    def handle(self, data: Mapping[str, Any]) -> Result:
        """Run the handler on a stored payload (re-validated, so the handler sees its model)."""
        return self.handler(self.model.model_validate(data))


_REGISTRY: dict[str, EventType] = {}


def event_type(
    name: str,
    model: type[M],
    *,
    size: TaskSize | None = None,
    description: str | None = None,
    concurrency_limit: int | None = None,
) -> Callable[[Handler[M]], Handler[M]]:
    """Register `model` and the decorated handler as event type `name`, with its deployment's policies:
    the Fargate `size` of its runs, the deployment's `description`, and a `concurrency_limit` on its runs."""
    if not TYPE_NAME.match(name):
        raise ValueError(f"event type name {name!r} must match {TYPE_NAME.pattern}")
    if concurrency_limit is not None and concurrency_limit < 1:
        raise ValueError(f"event type {name!r}: concurrency_limit is at least 1, not {concurrency_limit}")
    if description is not None and not description.strip():
        raise ValueError(f"event type {name!r}: a description needs some text")

    def register(handler: Handler[M]) -> Handler[M]:
        existing = _REGISTRY.get(name)
        # The same module imported twice re-registers harmlessly; another model under the name is a mistake.
        if existing is not None and _origin(existing.model) != _origin(model):
            raise ValueError(f"event type {name!r} is already registered by {_origin(existing.model)}")
        _REGISTRY[name] = EventType(
            name=name,
            model=model,
            handler=handler,
            size=size,
            deployment_description=description,
            concurrency_limit=concurrency_limit,
        )
        return handler

    return register


def registered() -> Mapping[str, EventType]:
    """The event types registered so far, by name."""
    return _REGISTRY


def _origin(model: type[EventData]) -> str:
    return f"{model.__module__}.{model.__qualname__}"
