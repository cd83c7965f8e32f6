"""The trigger path's watchdog: is the scheduled heartbeat still making it into the store?

`emit-tick/every-5-minutes` sends a `scheduled_tick` from the source `schedule` through the gateway
like any sender; it travels gateway → spool → Prefect event → automation → worker flow → DuckDB.
Its newest stored copy says the whole path worked that recently. Pure code: the caller passes the
newest heartbeat's times (`DuckDBStore.latest_heartbeat`), the time now and, when known, since when
the stack has been up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from flowhook.events.builtin import SCHEDULED_TICK
from flowhook.names import BATCH_READY, SCHEDULE_SOURCE, TICK_DEPLOYMENT, WORK_POOL, worker_deployment

HEARTBEAT_TYPE = SCHEDULED_TICK
"""The event type of a heartbeat."""
HEARTBEAT_SOURCE = SCHEDULE_SOURCE
"""The source a heartbeat is delivered as (`tasks.sources.emit_scheduled_tick`)."""
HEARTBEAT_EVENT = "flowhook.heartbeat.stored"
"""The Prefect event a worker flow emits after storing a heartbeat; the proactive trigger expects it."""
HEARTBEAT_RESOURCE = "flowhook.heartbeat"
"""The `prefect.resource.id` of that event."""
ALERT_ARTIFACT_KEY = "flowhook-trigger-path-alert"

Status = Literal["healthy", "unhealthy", "unknown"]
_HINT = "a trigger, the worker or the Prefect server may be down"


def is_heartbeat(event_type: str, source: str) -> bool:
    """Whether an event with this type and source is a heartbeat."""
    return event_type == HEARTBEAT_TYPE and source == HEARTBEAT_SOURCE


@dataclass(frozen=True)
class Heartbeat:
    """The trigger path's state at `checked`, from the newest stored heartbeat.

    healthy: a heartbeat was stored within `max_age_seconds`; unhealthy: none was, or none ever was
    and the stack has been up longer than that; unknown: none ever was and the stack's uptime is
    unknown or shorter. `age_seconds` is checked − stored and `end_to_end_seconds` stored − occurred
    (negative when the clocks that stamped them disagree); both None without a heartbeat.
    """

    status: Status
    reason: str
    checked: datetime
    max_age_seconds: float
    last_occurred: datetime | None = None
    last_stored: datetime | None = None
    age_seconds: float | None = None
    end_to_end_seconds: float | None = None
    up_seconds: float | None = None

    @property
    def healthy(self) -> bool:
        return self.status == "healthy"

    @property
    def summary(self) -> str:
        """One line for people: `healthy — last heartbeat stored 42 s ago, …`."""
        label = {"healthy": "healthy", "unhealthy": "UNHEALTHY", "unknown": "unknown"}[self.status]
        return f"{label} — {self.reason}"


def _aware_utc(name: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {value!r}")
    return value.astimezone(UTC)


def duration(seconds: float) -> str:
    """A short human duration: `3.1 s`, `42 s`, `14 min`, `2.5 h`, `3.0 d`."""
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 120 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def check_heartbeat(
    last: tuple[datetime, datetime] | None,
    *,
    now: datetime,
    max_age_seconds: float,
    up_since: datetime | None = None,
) -> Heartbeat:
    """The trigger path's status from the newest heartbeat's (occurred, stored) times, or None if none was stored.

    Only `stored` (flowhook's clock) decides health; `occurred` is the tick's nominal time on Prefect's
    clock, used for the end-to-end figure alone. A heartbeat stored at most `max_age_seconds` ago is healthy.
    """
    if not max_age_seconds > 0:
        raise ValueError(f"max age must be positive, got {max_age_seconds!r}")
    now = _aware_utc("now", now)
    up = None if up_since is None else (now - _aware_utc("up_since", up_since)).total_seconds()
    limit = f"max {duration(max_age_seconds)}"
    if last is None:
        if up is not None and up > max_age_seconds:
            reason = f"no heartbeat ever stored, and the stack has been up for {duration(up)} ({limit}): {_HINT}"
            return Heartbeat("unhealthy", reason, now, max_age_seconds, up_seconds=up)
        since = "" if up is None else f" (the stack has been up for {duration(up)}, {limit})"
        return Heartbeat("unknown", f"no heartbeat stored yet{since}", now, max_age_seconds, up_seconds=up)
    occurred, stored = _aware_utc("occurred", last[0]), _aware_utc("stored", last[1])
    age = (now - stored).total_seconds()
    end_to_end = (stored - occurred).total_seconds()
    if age > max_age_seconds:
        status: Status = "unhealthy"
        reason = f"no heartbeat stored for {duration(age)} ({limit}): {_HINT}"
    else:
        status = "healthy"
        if end_to_end >= 0:
            sent = f"{duration(end_to_end)} after it was sent"
        else:
            sent = f"{duration(-end_to_end)} before its nominal send time (the clocks disagree)"
        reason = f"last heartbeat stored {'just now' if age < 0.05 else duration(age) + ' ago'}, {sent}"
    return Heartbeat(
        status,
        reason,
        now,
        max_age_seconds,
        last_occurred=occurred,
        last_stored=stored,
        age_seconds=age,
        end_to_end_seconds=end_to_end,
        up_seconds=up,
    )


def to_json_dict(heartbeat: Heartbeat) -> dict[str, object]:
    """The status as JSON-able values (datetimes as ISO-8601 strings)."""

    def iso(value: datetime | None) -> str | None:
        return None if value is None else value.isoformat()

    return {
        "status": heartbeat.status,
        "healthy": heartbeat.healthy,
        "reason": heartbeat.reason,
        "checked": heartbeat.checked.isoformat(),
        "max_age_seconds": heartbeat.max_age_seconds,
        "last_occurred": iso(heartbeat.last_occurred),
        "last_stored": iso(heartbeat.last_stored),
        "age_seconds": heartbeat.age_seconds,
        "end_to_end_seconds": heartbeat.end_to_end_seconds,
        "up_seconds": heartbeat.up_seconds,
    }


def stored_event_payload(last: tuple[datetime, datetime]) -> dict[str, object]:
    """The payload of the `flowhook.heartbeat.stored` Prefect event for the newest heartbeat."""
    occurred, stored = _aware_utc("occurred", last[0]), _aware_utc("stored", last[1])
    return {
        "occurred": occurred.isoformat(),
        "stored": stored.isoformat(),
        "end_to_end_seconds": (stored - occurred).total_seconds(),
    }


def alert_markdown(heartbeat: Heartbeat) -> str:
    """The alert artifact: what is missing and what to check, in the order the heartbeat travels."""
    last = (
        "No heartbeat has ever been stored."
        if heartbeat.last_stored is None
        else f"The last heartbeat (tick of {heartbeat.last_occurred:%Y-%m-%d %H:%M:%S} UTC) was stored at "
        f"{heartbeat.last_stored:%Y-%m-%d %H:%M:%S} UTC."
    )
    lines = ["# flowhook: trigger path heartbeat missing", "", f"**{heartbeat.summary}**", ""]
    if heartbeat.healthy:
        lines += [
            f"The store has a heartbeat from {duration(heartbeat.age_seconds or 0)} ago, yet Prefect saw no "
            f"`{HEARTBEAT_EVENT}` event in time: the worker's events are not reaching the Prefect server "
            "(or the tick came late and just made it).",
            "",
        ]
    return "\n".join(
        [
            *lines,
            f"Checked at {heartbeat.checked:%Y-%m-%d %H:%M:%S} UTC. {last} A `{HEARTBEAT_TYPE}` from the "
            f"`{HEARTBEAT_SOURCE}` source is expected every 5 minutes and is taken as missing after "
            f"{duration(heartbeat.max_age_seconds)} (`FLOWHOOK_HEARTBEAT_MAX_AGE_SECONDS`).",
            "",
            "## What to check, along the heartbeat's path",
            "",
            f"1. **The schedule**: does `{TICK_DEPLOYMENT}` have recent runs, and did they complete? "
            "(Prefect's scheduler service must be on; a paused schedule sends nothing.)",
            "2. **The gateway**: `GET /health` on the gateway; its log in `data/logs/gateway.log`.",
            "3. **The spool**: `flowhook status` — batches piling up in `ready` mean their "
            f"`{BATCH_READY}` events reach no automation, or no worker takes the runs.",
            f"4. **The automation**: `{worker_deployment(HEARTBEAT_TYPE)}`'s trigger is enabled, and the "
            f"`{BATCH_READY}` events appear on the Events page.",
            f"5. **The worker**: a worker is polling the `{WORK_POOL}` work pool; late or crashed "
            f"`{worker_deployment(HEARTBEAT_TYPE)}` runs.",
            f"6. **The store**: `flowhook sql \"SELECT max(stored) FROM events WHERE source = '{HEARTBEAT_SOURCE}'\"`; "
            "a run that cannot lock the DuckDB file fails after `FLOWHOOK_LOCK_TIMEOUT_SECONDS`.",
            "",
            "`flowhook status --check` exits 1 while the trigger path is unhealthy.",
        ]
    )
