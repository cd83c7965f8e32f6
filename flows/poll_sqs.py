"""The SQS source as a deployment: poll the queue for a while, then make way for the next run."""

from __future__ import annotations

from prefect import flow

from flows import scheduled_name
from tasks.sources import poll_queue


@flow(name="poll-sqs", flow_run_name=scheduled_name("poll SQS"), log_prints=True)
def poll_sqs(duration_seconds: float = 290.0) -> bool:
    """Deliver SQS messages to the gateway for `duration_seconds` (Lambda-style batches)."""
    if not poll_queue(duration_seconds):
        print("no SQS queue configured (FLOWHOOK_SQS__QUEUE_URL): nothing to poll")
        return False
    return True
