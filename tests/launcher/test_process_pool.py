"""Prefect's own `process` worker type stays a working choice of the local stack (FLOWHOOK_WORKER_TYPE=process):
an automation's run is spawned as a new Python process and stores its event."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flowhook.stack import LocalStack
from tests.conftest import e2e_stack_config
from tests.launcher.conftest import Probe

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def process_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probe]:
    data_dir = tmp_path_factory.mktemp("process-stack")
    with LocalStack(e2e_stack_config(data_dir, worker_type="process"), progress=lambda message: None) as stack:
        yield Probe(stack=stack, module_dir=data_dir, flag=data_dir / "unused.flag")


def test_the_process_worker_type_spawns_runs_that_store_their_events(process_stack: Probe) -> None:
    pool = httpx.get(f"{process_stack.api}/work_pools/flowhook", timeout=30).json()
    assert pool["type"] == "process"
    event_id = process_stack.send("user_request", {"user_id": "u2", "action": "search"})
    _, run_id = process_stack.wait_stored(event_id)
    run = process_stack.run(run_id)
    assert run["work_pool_name"] == "flowhook" and run["infrastructure_pid"]
    log = process_stack.worker_log()
    assert "warm template" not in log  # Prefect's worker, no template


def test_a_stack_rejects_an_unknown_worker_type(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="worker_type must be one of flowhook, process"):
        e2e_stack_config(tmp_path, worker_type="docker")
