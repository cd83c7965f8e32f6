"""Which announced flow runs the worker submits at once (the pure parts of launcher.announced)."""

from __future__ import annotations

import datetime
import uuid

import pytest
from prefect.client.schemas.objects import FlowRun
from prefect.states import Pending, Running, Scheduled

from flowhook.launcher.announced import SCHEDULED_EVENT, due, flow_run_id, scheduled_filter

NOW = datetime.datetime(2026, 12, 2, 12, 0, tzinfo=datetime.UTC)


def _run(state: object, *, queue: str = "default", start: datetime.datetime | None = None) -> FlowRun:
    return FlowRun(flow_id=uuid.uuid4(), state=state, work_queue_name=queue, next_scheduled_start_time=start or NOW)


def test_the_filter_asks_for_scheduled_runs_of_the_pool_only() -> None:
    pool = uuid.uuid4()
    filter_ = scheduled_filter(pool)
    assert filter_.event is not None and filter_.event.name == [SCHEDULED_EVENT]
    assert filter_.any_resource is not None and filter_.any_resource.id == [f"prefect.work-pool.{pool}"]


def test_the_run_id_comes_from_a_flow_run_resource_only() -> None:
    run = uuid.uuid4()
    assert flow_run_id(f"prefect.flow-run.{run}") == run
    assert flow_run_id(f"prefect.deployment.{run}") is None
    assert flow_run_id("prefect.flow-run.not-a-uuid") is None


@pytest.mark.parametrize(
    ("run", "queues", "expected"),
    [
        (_run(Scheduled()), set(), True),
        (_run(Scheduled(), queue="default"), {"default"}, True),
        (_run(Scheduled(), queue="other"), {"default"}, False),  # not one of the worker's queues
        (_run(Pending()), set(), False),  # taken already (by the poll, or another worker)
        (_run(Running()), set(), False),
        (_run(Scheduled(), start=NOW + datetime.timedelta(seconds=5)), set(), True),  # within the prefetch
        (_run(Scheduled(), start=NOW + datetime.timedelta(hours=1)), set(), False),  # a later scheduled run
    ],
)
def test_a_run_is_due_when_a_poll_now_would_take_it(run: FlowRun, queues: set[str], expected: bool) -> None:
    assert due(run, now=NOW, prefetch_seconds=10, queues=queues) is expected
