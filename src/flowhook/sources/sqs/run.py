"""Run the configured SQS poller for a while (the deployment) or until stopped (the CLI)."""

from __future__ import annotations

import threading

from flowhook.events import load_catalog
from flowhook.settings import Settings
from flowhook.sources.emit import local_sink
from flowhook.sources.sqs.client import sqs_client
from flowhook.sources.sqs.poller import SqsPoller

SOURCE = "sqs"


def poll_configured_queue(settings: Settings, *, duration: float | None = None) -> bool:
    """Poll `settings.sqs` into the local gateway; False when no queue is configured."""
    config = settings.sqs
    if config is None:
        return False
    poller = SqsPoller(sqs_client(config), config, local_sink(settings, SOURCE), load_catalog(settings.event_modules))
    stop = threading.Event()
    timer = threading.Timer(duration, stop.set) if duration is not None else None
    if timer:
        timer.daemon = True
        timer.start()
    try:
        poller.run(stop=stop)
    finally:
        if timer:
            timer.cancel()
    return True
