"""The flowhook worker on a real stack: automation → forked run → DuckDB; a SIGKILLed run ends Crashed and its
batch is taken again, once; cancellation through the API stops the child; a changed event module is picked up
without restarting the worker."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import Cancelling

from tests.launcher.conftest import Probe, parent_pid, until, write_probe

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


def _pid(run: dict[str, Any]) -> int:
    return int(str(run["infrastructure_pid"]).rsplit(":", 1)[-1])


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _running_probe(probe: Probe, exclude: set[str]) -> dict[str, Any]:
    """The warm_probe run that has started (Running, with its process id), other than those in `exclude`."""
    found: list[dict[str, Any]] = []

    def started() -> bool:
        found[:] = [
            r
            for r in probe.runs("process-batch/warm_probe", ["RUNNING"])
            if r["id"] not in exclude and r.get("infrastructure_pid")
        ]
        return bool(found)

    until(started, 120, probe.stack.check_alive)
    return found[0]


def test_an_automation_run_is_forked_from_the_warm_template_and_stores_its_event(probe: Probe) -> None:
    pool = httpx.get(f"{probe.api}/work_pools/flowhook", timeout=30).json()
    assert pool["type"] == "flowhook"
    event_id = probe.send("user_request", {"user_id": "u1", "action": "search"})
    result, run_id = probe.wait_stored(event_id)
    assert orjson.loads(result)  # the built-in handler's result
    until(lambda: probe.run(run_id)["state_type"] == "COMPLETED", 60)
    run = probe.run(run_id)
    assert run["work_pool_name"] == "flowhook" and run["infrastructure_pid"]
    # Labelled in the background (the run did not wait for that write), as Prefect's own worker labels a run.
    until(lambda: probe.run(run_id)["labels"].get("prefect.worker.type") == "flowhook", 30)
    log = probe.worker_log()
    assert "warm template ready" in log
    assert "starting this run in a new process instead" not in log  # forked, not spawned


def test_a_killed_run_ends_crashed_and_its_batch_is_stored_once_by_another_run(probe: Probe) -> None:
    probe.flag.touch()  # the handler waits: the run is killed with its batch claimed, not stored
    event_id = probe.send("warm_probe", {"n": 1})
    run = _running_probe(probe, exclude=set())
    pid = _pid(run)
    template = parent_pid(pid)  # forked by the worker's template, not spawned by the worker
    assert template != probe.stack.pids()["worker"] and parent_pid(template) == probe.stack.pids()["worker"]
    until(lambda: any((probe.stack.config.data_dir / "spool" / "claimed").glob("*warm_probe*")), 60)
    os.kill(pid, signal.SIGKILL)
    until(lambda: probe.run(run["id"])["state_type"] == "CRASHED", 60)
    assert "status code: -9" in (probe.run(run["id"])["state"]["message"] or "")
    probe.flag.unlink()

    with temporary_settings(updates={PREFECT_API_URL: probe.api}):

        def swept_and_stored() -> bool:
            if not probe.stored(event_id):
                run_deployment("sweep-batches/every-minute", timeout=120)
            return bool(probe.stored(event_id))

        until(swept_and_stored, 180, probe.stack.check_alive)
    rows = probe.stored(event_id)
    assert len(rows) == 1, rows  # nothing doubled
    result, stored_by = rows[0]
    assert orjson.loads(result) == {"n": 1, "version": 1} and stored_by != run["id"]
    assert probe.store().duplicate_ids() == 0


def test_cancelling_a_run_through_the_api_stops_its_process(probe: Probe) -> None:
    probe.flag.touch()
    crashed = {r["id"] for r in probe.runs("process-batch/warm_probe", ["CRASHED"])}
    probe.send("warm_probe", {"n": 2})
    run = _running_probe(probe, exclude=crashed)
    pid = _pid(run)
    assert _alive(pid)

    async def cancel() -> None:
        async with get_client() as client:
            await client.set_flow_run_state(run["id"], Cancelling(), force=True)

    with temporary_settings(updates={PREFECT_API_URL: probe.api}):
        asyncio.run(cancel())
    try:
        until(lambda: probe.run(run["id"])["state_type"] == "CANCELLED", 90)
        until(lambda: not _alive(pid), 30)
    finally:
        probe.flag.unlink()


def test_a_changed_event_module_is_picked_up_without_restarting_the_worker(probe: Probe) -> None:
    worker = probe.stack.pids()["worker"]
    first = probe.send("warm_probe", {"n": 3})
    result, _ = probe.wait_stored(first)
    assert orjson.loads(result) == {"n": 3, "version": 1}
    ready = probe.worker_log().count("warm template ready")

    write_probe(probe.module_dir, 22)
    until(lambda: probe.worker_log().count("warm template ready") > ready, 90, probe.stack.check_alive)
    assert "replacing the warm template" in probe.worker_log()
    # The run that stored the first event may still be awake (1 s idle) with the old code: let it end.
    until(lambda: not probe.runs("process-batch/warm_probe", ["RUNNING", "PENDING"]), 60)
    second = probe.send("warm_probe", {"n": 4})
    result, _ = probe.wait_stored(second)
    assert orjson.loads(result) == {"n": 4, "version": 22}
    assert probe.stack.pids()["worker"] == worker  # the same worker process throughout


def test_a_broken_event_module_fails_its_runs_with_the_error_in_their_logs_not_stuck(probe: Probe) -> None:
    module = probe.module_dir / "warm_probe_events.py"
    ready = probe.worker_log().count("warm template ready")
    module.write_text(module.read_text() + "\nraise RuntimeError('warm_probe_events is broken on purpose')\n")
    try:
        until(lambda: probe.worker_log().count("warm template ready") > ready, 90, probe.stack.check_alive)
        assert "warm_probe_events is broken on purpose" in probe.worker_log()  # the worker says which and why
        until(lambda: not probe.runs("process-batch/warm_probe", ["RUNNING", "PENDING"]), 60)
        failed_before = {r["id"] for r in probe.runs("process-batch/warm_probe", ["FAILED"])}
        probe.send("warm_probe", {"n": 5})  # the gateway imported the module before it broke: accepted

        def failed() -> list[dict[str, Any]]:
            return [r for r in probe.runs("process-batch/warm_probe", ["FAILED"]) if r["id"] not in failed_before]

        until(lambda: bool(failed()), 120, probe.stack.check_alive)
        run_id = failed()[0]["id"]
        logs = httpx.post(
            f"{probe.api}/logs/filter", json={"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200}, timeout=30
        ).json()
        text = "\n".join(log["message"] for log in logs)
        assert "warm_probe_events" in text and "broken on purpose" in text
    finally:
        write_probe(probe.module_dir, 22)


def test_a_run_near_its_time_limit_hands_its_type_to_a_successor_awake_before_it_ends(probe: Probe) -> None:
    """A steady stream of one type for longer than a run may take batches (10 s on this stack) is carried by
    a chain of runs, each started by the one before while it was still taking batches: no gap in which the
    type has no run awake and events wait for a cold start."""
    ids: list[str] = []
    deadline = time.monotonic() + 25
    while time.monotonic() < deadline:
        ids.append(probe.send("user_request", {"user_id": f"h{len(ids)}", "action": "search"}))
        time.sleep(0.1)
    db = probe.store()
    among = "FROM events WHERE id IN (SELECT unnest(?::VARCHAR[]))"
    until(lambda: db.query(f"SELECT count(*) {among}", [ids])[0][0] == len(ids), 180, probe.stack.check_alive)
    assert db.duplicate_ids() == 0
    run_ids = [row[0] for row in db.query(f"SELECT DISTINCT flow_run_id {among}", [ids])]
    until(lambda: all(probe.run(r)["end_time"] for r in run_ids), 60)
    runs = sorted((probe.run(r) for r in run_ids), key=lambda r: _when(r["start_time"]))
    every = probe.runs("process-batch/user_request", ["COMPLETED", "FAILED", "CRASHED", "RUNNING", "PENDING"])
    timeline = "\n".join(
        f"{r['id'][:8]} {r['name']}: created {r['created']}, start {r['start_time']}, end {r['end_time']}"
        for r in sorted(every, key=lambda r: r["created"])
    )
    # 25 s of events, 10 s a run at most: at least three runs carried them.
    assert len(runs) >= 3, timeline
    for run, successor in itertools.pairwise(runs):  # each awake before the one before it ended
        assert _when(successor["start_time"]) < _when(run["end_time"]), (
            f"{successor['id'][:8]} started after {run['id'][:8]} ended; the type's runs:\n{timeline}"
        )


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
