"""The names Prefect knows flowhook's parts by: the work pool, the worker flow and its deployments, the
batch event, and the deployments the CLI and the stack start by name.

Each is defined here once and imported wherever code needs it: the flows and tasks, the gateway, the
CLI and the stack live in different places, and flows/ cannot be imported from src/. prefect.yaml
spells them out for `prefect deploy`: its per-type entries are generated from these (`flowhook deployments
generate`), and tests/test_names.py checks that the hand-written rest agrees with them.
The watchdog's heartbeat event and resource are defined in `flowhook.worker.watchdog`, which alone uses them.
"""

from __future__ import annotations

WORK_POOL = "flowhook"
"""The local work pool that every deployment in prefect.yaml runs on."""
RUN_TAG = "flowhook"
"""The tag on every flowhook deployment, and on the worker runs that the sweeper or a replay starts."""

WORKER_FLOW = "process-batch"
"""The worker flow: one deployment per event type, named after the type (`process-batch/user_request`)."""
WORKER_ENTRYPOINT = "flows/process_batch.py:process_batch"
"""Where Prefect finds the worker flow, from the repository root (every worker deployment's `entrypoint`)."""
BATCH_READY = "flowhook.batch.ready"
"""The Prefect event the gateway emits for each sealed batch; every worker deployment's trigger expects it."""
BATCH_RESOURCE = "flowhook.batch"
"""The resource a batch event is about is `flowhook.batch.<batch id>`."""
EVENT_TYPE_LABEL = "flowhook.event-type"
"""The batch event's resource label naming its event type: each worker deployment's trigger matches on it."""

TICK_DEPLOYMENT = "emit-tick/every-5-minutes"
"""The schedule that sends the trigger path's heartbeat (a `scheduled_tick`)."""
REPORT_DEPLOYMENT = "publish-report/on-demand"
"""The reporting flow, run on demand (`flowhook demo` runs it at the end)."""
SOURCE_DEPLOYMENTS = ("poll-sqs/queue", "watch-files/incoming-folder")
"""Long-running source deployments the local stack starts (tagged `source` in prefect.yaml)."""

SCHEDULE_SOURCE = "schedule"
"""The source that scheduled ticks are delivered as."""

HOOKS_PATH = "/hooks/"
"""Where deliveries are posted: `POST /hooks/<source>` on the gateway."""


def worker_deployment(event_type: str) -> str:
    """The worker deployment for batches of `event_type`, as `flow/deployment`."""
    return f"{WORKER_FLOW}/{event_type}"


def batch_resource(batch_id: str) -> str:
    """The `prefect.resource.id` of the event that announces batch `batch_id`."""
    return f"{BATCH_RESOURCE}.{batch_id}"


ALL_TYPES = "all"
"""The event_type of a row that sums every type: the report's last row, and each second's sample of the queue."""

OUTCOMES = ("accepted", "refused", "quarantined", "timed_out")
"""What became of a delivery, as the gateway counts it and the report shows it: stored (202), refused (turned
away, e.g. 401, 429, 503), quarantined (authentic but not valid events, kept aside), or timed out (408: its head
or body did not arrive in time)."""
