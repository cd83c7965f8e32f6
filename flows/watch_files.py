"""The files source as a deployment: scan the incoming folder for a while, then make way for the next run."""

from __future__ import annotations

from prefect import flow

from flows import scheduled_name
from tasks.sources import watch_incoming


@flow(name="watch-files", flow_run_name=scheduled_name("watch files"), log_prints=True)
def watch_files(duration_seconds: float = 290.0) -> int:
    """Report new or changed files as data_update events for `duration_seconds`."""
    reported = watch_incoming(duration_seconds)
    print(f"{reported} files reported")
    return reported
