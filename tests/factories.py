"""Factories for test data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flowhook.events import Event

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def make_event(
    n: int, event_type: str = "user_request", *, transit_seconds: float = 0.0, data: dict[str, Any] | None = None
) -> Event:
    """Event number `n`: id `e<n>`, occurred n seconds after T0, received `transit_seconds` later."""
    occurred = T0 + timedelta(seconds=n)
    return Event(
        id=f"e{n}",
        type=event_type,
        source="shop",
        occurred=occurred,
        received=occurred + timedelta(seconds=transit_seconds),
        data={"n": n} if data is None else data,
    )
