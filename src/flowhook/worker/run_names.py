"""Flow-run names that say what each run is for, so the UI's run list reads without opening a run.

Prefect names a run after an animal unless its flow says otherwise; these are what flowhook's flows say.
"""

from __future__ import annotations

from datetime import UTC, datetime


def batch(event_type: str, count: int | None) -> str:
    """`user_request · 250 events`: the worker run's type and the size of the batch that woke it."""
    size = "? events" if count is None else f"{count:,} {'event' if count == 1 else 'events'}"
    return f"{event_type} · {size}"


def at(label: str, when: datetime | None) -> str:
    """`sweep · 17:58 UTC`: a scheduled run, by its nominal time (the scheduler's, not when it started)."""
    return label if when is None else f"{label} · {_utc(when):%H:%M} UTC"


def report(minutes: float | None, since: datetime | str | None) -> str:
    """`report · last 60 min`, or `report · since 17:54:12 UTC` for a window that starts at a given time."""
    if isinstance(since, str):
        try:
            since = datetime.fromisoformat(since)
        except ValueError:
            return f"report · since {since}"
    if since is not None:
        return f"report · since {_utc(since):%H:%M:%S} UTC"
    return f"report · last {minutes:g} min" if minutes is not None else "report"


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
