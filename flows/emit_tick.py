"""The schedule source: each scheduled run emits one `scheduled_tick` for its nominal time."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow
from prefect.runtime import flow_run

from flows import scheduled_name
from tasks.sources import emit_scheduled_tick


@flow(name="emit-tick", flow_run_name=scheduled_name("tick"), log_prints=True)
def emit_tick(schedule: str = "every-5-minutes") -> str:
    """Emit the tick of this run's scheduled time (late runs keep their nominal time, so lateness shows)."""
    tick = flow_run.get_scheduled_start_time() or datetime.now(UTC)
    event_id = emit_scheduled_tick(schedule, tick)
    print(f"tick {schedule} @ {tick.isoformat()} → event {event_id}")
    return event_id
