"""A real stack for the launcher's end-to-end tests, on the `flowhook` worker type, with a user event module
(`warm_probe`) in a temporary folder that the tests may break, slow down or change."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from flowhook.gateway.schemes import sign
from flowhook.gateway.secrets import secret_store
from flowhook.settings import Settings
from flowhook.sources.webhook import SignatureConfig
from flowhook.stack import LocalStack
from flowhook.store import DuckDBStore
from tests.conftest import ROOT, e2e_stack_config

PROBE_MODULE = '''"""The launcher tests' event type: waits while the flag file exists, then gives VERSION."""

import os
import time
from pathlib import Path

from flowhook.events.catalog import EventData, Result, event_type

VERSION = {version}


class WarmProbe(EventData):
    """A probe of the launcher."""

    n: int


@event_type("warm_probe", WarmProbe)
def handle_warm_probe(data: WarmProbe) -> Result:
    flag, deadline = os.environ.get("FLOWHOOK_WARM_PROBE_FLAG"), time.monotonic() + 120
    while flag and Path(flag).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return {{"n": data.n, "version": VERSION}}
'''


def write_probe(folder: Path, version: int) -> None:
    (folder / "warm_probe_events.py").write_text(PROBE_MODULE.format(version=version))


@dataclass
class Probe:
    """The stack and what the tests do to it."""

    stack: LocalStack
    module_dir: Path
    flag: Path

    @property
    def api(self) -> str:
        return self.stack.config.api_url

    def send(self, event_type: str, data: dict[str, Any]) -> str:
        """One signed webhook through the gateway; the event's id."""
        env = self.stack.env()
        settings = Settings(data_dir=self.stack.config.data_dir, sources_file=Path(env["FLOWHOOK_SOURCES_FILE"]))
        secret = secret_store(settings).secrets("demo", settings.source_configs()["demo"])[0]
        body = orjson.dumps({"type": event_type, "data": data})
        headers = sign(SignatureConfig(), body, secret, msg_id=f"warm_{uuid.uuid4().hex}")
        response = httpx.post(
            f"{self.stack.config.gateway_url}/hooks/demo",
            content=body,
            headers={**headers, "content-type": "application/json"},
            timeout=30,
        )
        assert response.status_code == 202, response.text
        return str(response.json()["ids"][0])

    def store(self) -> DuckDBStore:
        return DuckDBStore(self.stack.config.data_dir / "flowhook.duckdb", lock_timeout=60)

    def stored(self, event_id: str) -> list[tuple[Any, ...]]:
        """(result, flow_run_id) of each stored row of the event."""
        db = self.store()
        if not db.path.exists():
            return []
        return db.query("SELECT result, flow_run_id FROM events WHERE id = ?", [event_id])

    def wait_stored(self, event_id: str, timeout: float = 120) -> tuple[Any, ...]:
        until(lambda: bool(self.stored(event_id)), timeout, self.stack.check_alive)
        [row] = self.stored(event_id)
        return row

    def runs(self, deployment: str, states: list[str]) -> list[dict[str, Any]]:
        flow, name = deployment.split("/")
        body = {
            "flows": {"name": {"any_": [flow]}},
            "deployments": {"name": {"any_": [name]}},
            "flow_runs": {"state": {"type": {"any_": states}}},
        }
        found: list[dict[str, Any]] = httpx.post(f"{self.api}/flow_runs/filter", json=body, timeout=30).json()
        return found

    def run(self, run_id: str) -> dict[str, Any]:
        found: dict[str, Any] = httpx.get(f"{self.api}/flow_runs/{run_id}", timeout=30).json()
        return found

    def worker_log(self) -> str:
        return (self.stack.logs / "worker.log").read_text(errors="replace")


def parent_pid(pid: int) -> int:
    """The parent of a process, from /proc."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def until(condition: Callable[[], bool], timeout: float, check: Callable[[], None] = lambda: None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        check()
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probe]:
    module_dir = tmp_path_factory.mktemp("warm-modules")
    write_probe(module_dir, 1)
    data_dir = tmp_path_factory.mktemp("warm-stack")
    flag = data_dir / "warm_probe.flag"
    config = e2e_stack_config(
        data_dir,
        extra_env={
            "PYTHONPATH": os.pathsep.join(filter(None, [str(module_dir), os.environ.get("PYTHONPATH")])),
            "FLOWHOOK_EVENT_MODULES": '["warm_probe_events"]',
            "FLOWHOOK_WARM_PROBE_FLAG": str(flag),
            # Runs end 1 s after their last batch (a changed module is met by a fresh run), dead runs'
            # batches are released after 3 s, lost ones launched after 5 s.
            "FLOWHOOK_DRAIN__IDLE_SECONDS": "1",
            # A run takes batches for 10 s at most; 6 s before that, one still taking them launches its successor.
            "FLOWHOOK_DRAIN__MAX_SECONDS": "10",
            "FLOWHOOK_DRAIN__HANDOVER_SECONDS": "6",
            "FLOWHOOK_DEAD_RUN_AFTER_SECONDS": "3",
            "FLOWHOOK_SWEEP_AFTER_SECONDS": "5",
        },
        worker_type="flowhook",
    )
    with LocalStack(config, progress=lambda message: None) as stack:
        stack.deploy(ROOT / "tests" / "fixtures" / "warm-prefect.yaml")
        yield Probe(stack=stack, module_dir=module_dir, flag=flag)
