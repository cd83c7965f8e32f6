"""Events: the envelope every source produces, and the catalog of event types (model + handler).

Contract: an `Event` is frozen and its `id` is stable for a given delivery, so storing the same
event twice is a no-op downstream.
"""

from flowhook.events.catalog import Catalog, UnknownEventType, load_catalog
from flowhook.events.envelope import Event, derive_event_id, utc
from flowhook.events.policies import TaskSize
from flowhook.events.registry import EventData, EventResult, EventType, Result, ResultMismatch, event_type

__all__ = [
    "Catalog",
    "Event",
    "EventData",
    "EventResult",
    "EventType",
    "Result",
    "ResultMismatch",
    "TaskSize",
    "UnknownEventType",
    "derive_event_id",
    "event_type",
    "load_catalog",
    "utc",
]
