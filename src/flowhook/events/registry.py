"""Declaring event types: the payload and result base models, the `@event_type` decorator and the registry it fills.

Modules that declare types (`builtin`, a user's module) import this; the catalog reads what they registered.
A declaration is the whole type: model, handler and the policies its deployment is generated with
(`flowhook deployments generate` writes them into prefect.yaml; `flowhook ecs deploy` derives the ECS ones).
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError

from flowhook.events.envelope import utc
from flowhook.events.policies import TaskSize

TYPE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
RESERVED_RESULT_FIELDS = frozenset({"event_id", "stored"})
"""Columns every typed results view starts with (`store.results`): no result model may have a field so named."""


class EventData(BaseModel):
    """Base of every event type's payload model: lenient, unknown fields are kept."""

    model_config = ConfigDict(extra="allow")


class EventResult(BaseModel):
    """A convenient base for a type's result model: a key the model does not declare is an error, not dropped."""

    model_config = ConfigDict(extra="forbid")


class ResultMismatch(ValueError):
    """A handler returned something its type's result model does not accept (the event fails, as if it raised)."""


Result = Mapping[str, Any]
M = TypeVar("M", bound=EventData)
Handler = Callable[[M], Result | BaseModel]


@dataclass(frozen=True)
class EventType:
    """An event type: its name, payload model, the handler its worker flow runs per event, optionally the model
    of what the handler returns (checked before storing; the store's typed `results_<name>` view), and its policies."""

    name: str
    model: type[EventData]
    handler: Callable[[Any], Result | BaseModel]
    result: type[BaseModel] | None = None
    size: TaskSize | None = None
    """Fargate size of its worker runs on the ECS pool; None takes the pool's default."""
    deployment_description: str | None = None
    """Its deployment's description in prefect.yaml; None says what it processes, from the model's docstring."""
    concurrency_limit: int | None = None
    """At most this many of its worker runs at once (the deployment's `concurrency_limit`); None: no limit."""

    @property
    def description(self) -> str:
        return (self.model.__doc__ or self.name).strip().splitlines()[0]

    def handle(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Run the handler on a stored payload (re-validated, so the handler sees its model); its result as JSON-able
        values. With a result model, the result is validated against it (`ResultMismatch` if it does not fit) and
        stored as the model dumps it, times in UTC, so the typed view reads back what was stored."""
        returned = self.handler(self.model.model_validate(data))
        if self.result is None:
            return dict(returned.model_dump(mode="json") if isinstance(returned, BaseModel) else returned)
        try:
            checked = self.result.model_validate(returned)
        except ValidationError as exc:
            raise ResultMismatch(_mismatch(self.name, self.result, exc)) from None
        if type(checked) is self.result and not self._result_may_hold_times:
            return checked.model_dump(mode="json")
        times = {name: utc(value) for name, value in checked if isinstance(value, datetime)}
        return (checked.model_copy(update=times) if times else checked).model_dump(mode="json")

    @cached_property
    def _result_may_hold_times(self) -> bool:
        """Whether a value of the result model can be a datetime: if not, `handle` need not look for any."""
        return self.result is not None and (
            self.result.model_config.get("extra") == "allow"
            or not all(_never_time(field.annotation) for field in self.result.model_fields.values())
        )


_REGISTRY: dict[str, EventType] = {}


def event_type(
    name: str,
    model: type[M],
    *,
    result: type[BaseModel] | None = None,
    size: TaskSize | None = None,
    description: str | None = None,
    concurrency_limit: int | None = None,
) -> Callable[[Handler[M]], Handler[M]]:
    """Register `model` and the decorated handler as event type `name`; `result`, the model its handler's results
    must fit (a mapping or the model itself), gives the type a typed `results_<name>` view in the store. The
    deployment's policies: the Fargate `size` of its runs, its `description`, a `concurrency_limit` on its runs."""
    if not TYPE_NAME.match(name):
        raise ValueError(f"event type name {name!r} must match {TYPE_NAME.pattern}")
    if result is not None and (taken := RESERVED_RESULT_FIELDS & set(result.model_fields)):
        raise ValueError(f"result model {_origin(result)} may not have a field named {', '.join(sorted(taken))}")
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
            result=result,
            size=size,
            deployment_description=description,
            concurrency_limit=concurrency_limit,
        )
        return handler

    return register


def registered() -> Mapping[str, EventType]:
    """The event types registered so far, by name."""
    return _REGISTRY


_NEVER_TIMES = (str, int, float, bool, type(None))


def _never_time(annotation: Any) -> bool:
    """The annotation admits no datetime value: str, int, float, bool, None, literals, or unions of them."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _never_time(get_args(annotation)[0])
    if origin is Literal:
        return all(isinstance(value, _NEVER_TIMES) for value in get_args(annotation))
    if origin in (Union, types.UnionType):
        return all(_never_time(arg) for arg in get_args(annotation))
    return annotation in _NEVER_TIMES


def _origin(model: type[BaseModel]) -> str:
    return f"{model.__module__}.{model.__qualname__}"


def _mismatch(name: str, model: type[BaseModel], exc: ValidationError) -> str:
    """One line: which fields of the result did not fit, and why."""
    problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'result'}: {e['msg']}" for e in exc.errors())
    return f"the {name} handler's result does not fit {model.__name__}: {problems}"
