"""Hear of a new flow run of the pool from Prefect's event stream (`prefect.flow-run.Scheduled`, which an
automation's run-deployment action emits) and submit it at once, instead of at the worker's next poll.

Polling stays the fallback: while the stream is down the worker finds the same runs within
PREFECT_WORKER_QUERY_SECONDS, and the base worker's set of runs being submitted keeps either path from
submitting a run twice."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

import anyio
from prefect.client.schemas.responses import WorkerFlowRunResponse
from prefect.events.clients import get_events_subscriber
from prefect.events.filters import EventAnyResourceFilter, EventFilter, EventNameFilter
from prefect.exceptions import ObjectNotFound

if TYPE_CHECKING:
    import logging

    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.objects import FlowRun, WorkPool

SCHEDULED_EVENT = "prefect.flow-run.Scheduled"
FLOW_RUN_PREFIX = "prefect.flow-run."
READ_ATTEMPTS = 5
"""The event is published inside the server's transaction: the run may not be readable for a moment."""


class _Worker(Protocol):
    """What the listener uses of Prefect's BaseWorker (private attributes: pinned by tests/launcher)."""

    _logger: logging.Logger | logging.LoggerAdapter[logging.Logger]
    _work_pool: WorkPool | None
    _work_queues: set[str]
    _prefetch_seconds: float
    _submitting_flow_run_ids: set[UUID]
    _runs_task_group: Any

    @property
    def client(self) -> PrefectClient: ...

    async def _submit_scheduled_flow_runs(self, flow_run_response: list[WorkerFlowRunResponse]) -> list[FlowRun]: ...


def scheduled_filter(pool_id: UUID) -> EventFilter:
    """Flow runs scheduled on the pool: the same shape as the base worker's cancellation filter."""
    return EventFilter(
        event=EventNameFilter(name=[SCHEDULED_EVENT]),
        any_resource=EventAnyResourceFilter(id=[f"prefect.work-pool.{pool_id}"]),
    )


def flow_run_id(resource_id: str) -> UUID | None:
    """The run's id from the event's resource (`prefect.flow-run.<id>`), None for anything else."""
    if not resource_id.startswith(FLOW_RUN_PREFIX):
        return None
    try:
        return UUID(resource_id.removeprefix(FLOW_RUN_PREFIX))
    except ValueError:
        return None


def due(run: FlowRun, *, now: datetime.datetime, prefetch_seconds: float, queues: set[str]) -> bool:
    """Whether a worker polling now would take the run: still Scheduled, due within the prefetch, on one of
    the worker's queues (all when it names none)."""
    if run.state is None or not run.state.is_scheduled():
        return False
    if queues and run.work_queue_name not in queues:
        return False
    start = run.next_scheduled_start_time or run.expected_start_time
    return start is None or start <= now + datetime.timedelta(seconds=prefetch_seconds)


class ScheduledRunListener:
    """Subscribes while the worker runs; reconnects after a drop, with backoff, polling meanwhile."""

    def __init__(self, worker: _Worker, *, retry_seconds: float = 2.0, max_retry_seconds: float = 30.0) -> None:
        self._worker = worker
        self._retry = retry_seconds
        self._max_retry = max_retry_seconds
        self.submitted = 0

    async def run(self) -> None:
        delay = self._retry
        while True:
            pool = self._worker._work_pool
            if pool is None:  # not synced with the API yet
                await anyio.sleep(0.5)
                continue
            try:
                async with get_events_subscriber(filter=scheduled_filter(pool.id)) as events:
                    delay = self._retry
                    async for event in events:
                        run_id = flow_run_id(event.resource.id)
                        if run_id is not None:
                            self._worker._runs_task_group.start_soon(self.submit, run_id)
            except Exception as exc:  # the stream dropped: polling carries on meanwhile
                self._worker._logger.warning(
                    "event stream for new flow runs dropped (%s: %s); polling until it is back",
                    type(exc).__name__,
                    exc,
                )
            await anyio.sleep(delay)
            delay = min(delay * 2, self._max_retry)

    async def submit(self, run_id: UUID) -> None:
        worker = self._worker
        if run_id in worker._submitting_flow_run_ids:
            return
        run = None
        for attempt in range(READ_ATTEMPTS):
            try:
                run = await worker.client.read_flow_run(run_id)
                break
            except ObjectNotFound:
                await anyio.sleep(0.1 * (attempt + 1))
            except Exception as exc:
                worker._logger.debug("could not read announced flow run %s: %s", run_id, exc)
                return
        pool = worker._work_pool
        if run is None or pool is None or run.work_queue_id is None or run_id in worker._submitting_flow_run_ids:
            return
        now = datetime.datetime.now(datetime.UTC)
        if not due(run, now=now, prefetch_seconds=worker._prefetch_seconds, queues=worker._work_queues):
            return
        response = WorkerFlowRunResponse(work_pool_id=pool.id, work_queue_id=run.work_queue_id, flow_run=run)
        if await worker._submit_scheduled_flow_runs([response]):
            self.submitted += 1
