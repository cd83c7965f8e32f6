"""Tasks of the source flows: each runs one flowhook source for a while."""

from __future__ import annotations

from datetime import datetime

from prefect import task
from prefect.cache_policies import NONE

from flowhook.events.builtin import SCHEDULED_TICK
from flowhook.names import SCHEDULE_SOURCE
from flowhook.settings import get_settings
from flowhook.sources import files
from flowhook.sources.emit import emit, local_sink
from tasks import IO_RETRIES


@task(cache_policy=NONE, **IO_RETRIES)
def emit_scheduled_tick(schedule: str, tick: datetime) -> str:
    # Keyed on the schedule and its nominal time: a retried or duplicated run is the same event.
    return emit(
        SCHEDULED_TICK,
        {"schedule": schedule, "tick": tick.isoformat()},
        id=f"{schedule}@{tick.isoformat()}",
        timestamp=tick,
        source=SCHEDULE_SOURCE,
    )


@task(cache_policy=NONE)
def watch_incoming(duration_seconds: float) -> int:
    settings = get_settings()
    folder = settings.incoming_dir
    folder.mkdir(parents=True, exist_ok=True)
    watcher = files.FileWatcher(folder, settings.data_dir / "state" / "files.json")
    return files.watch(
        watcher,
        local_sink(settings, files.SOURCE),
        dataset=folder.name,
        interval=settings.watch_interval_seconds,
        duration=duration_seconds,
    )


@task(cache_policy=NONE)
def poll_queue(duration_seconds: float) -> bool:
    from flowhook.sources.sqs.run import poll_configured_queue

    return poll_configured_queue(get_settings(), duration=duration_seconds)
