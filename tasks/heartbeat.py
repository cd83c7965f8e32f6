"""Tasks of the trigger path's watchdog: announce a stored heartbeat to Prefect; check and alert when it is missing."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE
from prefect.events import emit_event

from flowhook.settings import get_settings
from flowhook.store import StoredEvent, store_exists
from flowhook.uptime import started_at
from flowhook.worker import watchdog
from tasks import IO_RETRIES, Bulk, current_store


@task(cache_policy=NONE, **IO_RETRIES)
def announce_heartbeat(handled: Bulk[list[StoredEvent]]) -> bool:
    """Emit `flowhook.heartbeat.stored` when the step stored a heartbeat: the proactive trigger expects one."""
    if not any(watchdog.is_heartbeat(event.type, event.source) for event in handled.items):
        return False
    last = current_store().latest_heartbeat()
    if last is None:
        return False
    emit_event(
        event=watchdog.HEARTBEAT_EVENT,
        resource={"prefect.resource.id": watchdog.HEARTBEAT_RESOURCE, "prefect.resource.name": "trigger path"},
        payload=watchdog.stored_event_payload(last),
    )
    return True


@task(cache_policy=NONE, **IO_RETRIES)
def check_trigger_path(max_age_seconds: float) -> watchdog.Heartbeat:
    settings = get_settings()
    last = current_store().latest_heartbeat() if store_exists(settings.store_config) else None
    return watchdog.check_heartbeat(
        last, now=datetime.now(UTC), max_age_seconds=max_age_seconds, up_since=started_at(settings.data_dir)
    )


@task(cache_policy=NONE)
def publish_trigger_path_alert(heartbeat: watchdog.Heartbeat) -> None:
    get_run_logger().error("trigger path heartbeat missing: %s", heartbeat.summary)
    create_markdown_artifact(
        markdown=watchdog.alert_markdown(heartbeat),
        key=watchdog.ALERT_ARTIFACT_KEY,
        description="flowhook: no scheduled heartbeat reached the store in time; what to check",
    )
