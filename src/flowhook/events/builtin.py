"""The event types flowhook ships: a payload model, a result model and a handler each.

Adding a type is the same: a payload model, a result model (optional: it gives the type a typed
`results_<type>` view in the store) and a handler decorated with `@event_type` (with the type's policies),
then `flowhook deployments generate` writes its deployment and trigger into prefect.yaml (see the README).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from flowhook.events.policies import TaskSize
from flowhook.events.registry import EventData, EventResult, event_type

USER_REQUEST = "user_request"


class UserRequest(EventData):
    """A user asked the product for something (a page, a search, a purchase)."""

    user_id: str = Field(min_length=1, description="Who asked.")
    action: str = Field(min_length=1, description="What they asked for, e.g. `search` or `checkout`.")
    path: str | None = Field(default=None, description="The page or endpoint, if any.")
    amount_cents: int | None = Field(default=None, ge=0, description="Money involved, for purchases.")


class UserRequestResult(EventResult):
    """How a user request was classified."""

    action: str = Field(description="The action, trimmed and lower-cased.")
    priority: Literal["high", "normal"] = Field(description="`high` for money and cancellations, else `normal`.")
    amount: float = Field(description="Money involved, in currency units (0 when none).")


_URGENT_ACTIONS = frozenset({"checkout", "payment", "cancel"})


@event_type(USER_REQUEST, UserRequest, result=UserRequestResult, size=TaskSize(512, 1024))
def handle_user_request(data: UserRequest) -> UserRequestResult:
    """Classify the request: money and cancellations are urgent."""
    action = data.action.strip().lower()
    return UserRequestResult(
        action=action,
        priority="high" if action in _URGENT_ACTIONS else "normal",
        amount=(data.amount_cents or 0) / 100,
    )


DATA_UPDATE = "data_update"


class DataUpdate(EventData):
    """A dataset changed: new rows, a rewritten file or an object landed in a bucket."""

    dataset: str = Field(min_length=1, description="Logical dataset name.")
    uri: str = Field(min_length=1, description="Where the new data is, e.g. `s3://bucket/key` or a path.")
    rows: int = Field(default=0, ge=0, description="Rows added or changed.")
    operation: Literal["insert", "update", "delete"] = Field(default="insert", description="What changed.")
    checksum: str | None = Field(default=None, description="Content checksum, when the sender has one.")
    size_bytes: int | None = Field(default=None, ge=0, description="Size of the new data, when known.")


class DataUpdateResult(EventResult):
    """A dataset change with the sign of its row delta."""

    dataset: str = Field(description="Logical dataset name.")
    row_delta: int = Field(description="Rows added (positive) or deleted (negative).")
    scheme: str = Field(description="Where the data lives: the URI's scheme, `file` for a path.")


@event_type(DATA_UPDATE, DataUpdate, result=DataUpdateResult, size=TaskSize(1024, 2048))
def handle_data_update(data: DataUpdate) -> DataUpdateResult:
    """Record the change with the sign of its row delta."""
    delta = -data.rows if data.operation == "delete" else data.rows
    scheme = data.uri.split("://", 1)[0] if "://" in data.uri else "file"
    return DataUpdateResult(dataset=data.dataset, row_delta=delta, scheme=scheme)


SCHEDULED_TICK = "scheduled_tick"


class ScheduledTick(EventData):
    """A schedule fired: the heartbeat of periodic work."""

    schedule: str = Field(min_length=1, description="Name of the schedule that fired.")
    tick: datetime = Field(description="The nominal time of the tick.")


class ScheduledTickResult(EventResult):
    """Which slot of the day a tick belongs to."""

    schedule: str = Field(description="Name of the schedule that fired.")
    minute_of_day: int = Field(ge=0, lt=24 * 60, description="Minutes since midnight of the tick's nominal time.")


@event_type(SCHEDULED_TICK, ScheduledTick, result=ScheduledTickResult, size=TaskSize(256, 512))
def handle_scheduled_tick(data: ScheduledTick) -> ScheduledTickResult:
    """Note which slot of the day the tick belongs to."""
    return ScheduledTickResult(schedule=data.schedule, minute_of_day=data.tick.hour * 60 + data.tick.minute)
