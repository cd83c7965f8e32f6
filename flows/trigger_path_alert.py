"""The watchdog's alert: run by a proactive trigger when no `flowhook.heartbeat.stored` came in time."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flowhook.settings import get_settings
from flowhook.worker.watchdog import to_json_dict
from flows import scheduled_name
from tasks.heartbeat import check_trigger_path, publish_trigger_path_alert


@flow(name="trigger-path-alert", flow_run_name=scheduled_name("heartbeat missing"), log_prints=True)
def trigger_path_alert(max_age_seconds: float | None = None) -> dict[str, Any]:
    """Log an error and publish the `flowhook-trigger-path-alert` artifact: what is missing, what to check."""
    heartbeat = check_trigger_path(max_age_seconds or get_settings().heartbeat_max_age_seconds)
    publish_trigger_path_alert(heartbeat)
    return to_json_dict(heartbeat)
