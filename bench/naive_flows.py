"""The naive path, for comparison: one event → one Prefect event → one automation → one flow run.

The shape most Prefect tutorials show (a Cloud webhook or `emit_event` per event, a deployment
trigger per event). `naive_event` handles and stores its one event with the same handler and the
same DuckDB store as flowhook's batches; `noop_event` does nothing, so its runs measure Prefect's
own emit → flow-complete floor. Deployed by `bench/prefect.yaml`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NONE
from prefect.runtime import flow_run

from flowhook.events import Event, load_catalog
from flowhook.settings import get_settings
from flowhook.spool import BatchRef
from flowhook.store import DuckDBStore
from flowhook.worker import steps

NAIVE_EVENT = "flowhook.naive.event"
NOOP_EVENT = "flowhook.noop.event"


@task(cache_policy=NONE)
def store_event(event: Event, emitted: datetime) -> int:
    settings = get_settings()
    now = datetime.now(UTC)
    ref = BatchRef(batch_id=f"naive-{event.id}", event_type=event.type, count=1, sealed=emitted, emitted=emitted)
    handled = steps.handle(
        [event], catalog=load_catalog(settings.event_modules), batch=ref, started=now, flow_run_id=flow_run.get_id()
    )
    return steps.store(DuckDBStore(settings.database, lock_timeout=settings.lock_timeout_seconds), handled)


@flow(name="naive-event")
def naive_event(event: dict[str, Any], emitted: datetime) -> int:
    """Store one event: a whole flow run for it."""
    return store_event(Event.model_validate(event), emitted)


@flow(name="noop-event")
def noop_event(event: dict[str, Any]) -> None:
    """Nothing: the run's own cost is Prefect's floor."""
