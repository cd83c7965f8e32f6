"""The event types flowhook ships: a model and a handler each.

Adding a type is the same: a model and a handler decorated with `@event_type` (with the type's policies),
then `flowhook deployments generate` writes its deployment and trigger into prefect.yaml (see the README).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from flowhook.events.policies import TaskSize
from flowhook.events.registry import EventData, Result, event_type

USER_REQUEST = "user_request"


class UserRequest(EventData):
    """A user asked the product for something (a page, a search, a purchase)."""

    user_id: str = Field(min_length=1, description="Who asked.")
    action: str = Field(min_length=1, description="What they asked for, e.g. `search` or `checkout`.")
    path: str | None = Field(default=None, description="The page or endpoint, if any.")
    amount_cents: int | None = Field(default=None, ge=0, description="Money involved, for purchases.")


_URGENT_ACTIONS = frozenset({"checkout", "payment", "cancel"})


@event_type(USER_REQUEST, UserRequest, size=TaskSize(512, 1024))
def handle_user_request(data: UserRequest) -> Result:
    """Classify the request: money and cancellations are urgent."""
    action = data.action.strip().lower()
    return {
        "action": action,
        "priority": "high" if action in _URGENT_ACTIONS else "normal",
        "amount": (data.amount_cents or 0) / 100,
    }


DATA_UPDATE = "data_update"


class DataUpdate(EventData):
    """A dataset changed: new rows, a rewritten file or an object landed in a bucket."""

    dataset: str = Field(min_length=1, description="Logical dataset name.")
    uri: str = Field(min_length=1, description="Where the new data is, e.g. `s3://bucket/key` or a path.")
    rows: int = Field(default=0, ge=0, description="Rows added or changed.")
    operation: Literal["insert", "update", "delete"] = Field(default="insert", description="What changed.")
    checksum: str | None = Field(default=None, description="Content checksum, when the sender has one.")
    size_bytes: int | None = Field(default=None, ge=0, description="Size of the new data, when known.")


@event_type(DATA_UPDATE, DataUpdate, size=TaskSize(1024, 2048))
def handle_data_update(data: DataUpdate) -> Result:
    """Record the change with the sign of its row delta."""
    delta = -data.rows if data.operation == "delete" else data.rows
    scheme = data.uri.split("://", 1)[0] if "://" in data.uri else "file"
    return {"dataset": data.dataset, "row_delta": delta, "scheme": scheme}


SCHEDULED_TICK = "scheduled_tick"


class ScheduledTick(EventData):
    """A schedule fired: the heartbeat of periodic work."""

    schedule: str = Field(min_length=1, description="Name of the schedule that fired.")
    tick: datetime = Field(description="The nominal time of the tick.")


@event_type(SCHEDULED_TICK, ScheduledTick, size=TaskSize(256, 512))
def handle_scheduled_tick(data: ScheduledTick) -> Result:
    """Note which slot of the day the tick belongs to."""
    return {"schedule": data.schedule, "minute_of_day": data.tick.hour * 60 + data.tick.minute}
