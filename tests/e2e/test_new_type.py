"""A new event type, declared once in a Python module, end to end on the real stack: `flowhook deployments
generate` writes its deployment and trigger into (a copy of) prefect.yaml, `prefect deploy` deploys it, a signed
webhook of the type wakes its own deployment's run through that trigger, and its typed result is a row of
`results_<type>`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from flowhook.deployments import FILES, ROOT_FILE
from flowhook.gateway.schemes import sign
from flowhook.gateway.secrets import secret_store
from flowhook.names import worker_deployment
from flowhook.settings import Settings
from flowhook.stack import LocalStack
from flowhook.store import DuckDBStore
from tests.conftest import ROOT, e2e_stack_config

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

MODULE = "ledger_events"
SOURCE = '''
from flowhook.events import EventData, event_type
from pydantic import BaseModel


class InvoicePaid(EventData):
    """An invoice was paid."""

    invoice: str
    amount_cents: int


class Booked(BaseModel):
    invoice: str
    amount: float


@event_type("invoice_paid", InvoicePaid, result=Booked)
def book(data: InvoicePaid) -> Booked:
    return Booked(invoice=data.invoice.upper(), amount=data.amount_cents / 100)
'''


def _flowhook(args: list[str], *, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The command in a process of its own (its catalog is what its settings name), with the stack's settings."""
    return subprocess.run(
        [sys.executable, "-m", "flowhook", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def ledger_stack(tmp_path: Path, declare_types: Callable[[str, str], str]) -> Iterator[tuple[LocalStack, Path]]:
    """The stack with the module on every process's path, and a copy of the repository's generated files."""
    declare_types(MODULE, SOURCE)
    module_dir = tmp_path / "event_modules"
    copy = tmp_path / "repo"
    for path in FILES:
        (copy / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / path, copy / path)
    env = {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(module_dir), os.environ.get("PYTHONPATH")])),
        "FLOWHOOK_EVENT_MODULES": f'["{MODULE}"]',
    }
    config = e2e_stack_config(tmp_path / "data", extra_env=env)
    with LocalStack(config, progress=lambda message: None) as stack:
        yield stack, copy


def test_a_type_declared_in_one_module_is_deployed_triggered_and_stored_typed(
    ledger_stack: tuple[LocalStack, Path],
) -> None:
    stack, copy = ledger_stack
    generated = _flowhook(["deployments", "generate"], cwd=copy, env=stack.env())
    assert generated.returncode == 0, generated.stderr
    assert generated.stdout.strip() == f"written: {ROOT_FILE}"  # the one generated file a new type changes
    stack.deploy(copy / ROOT_FILE)

    settings = Settings(data_dir=stack.config.data_dir, sources_file=Path(stack.env()["FLOWHOOK_SOURCES_FILE"]))
    config = settings.source_configs()["demo"]
    secret = secret_store(settings).secrets("demo", config)[0]
    body = orjson.dumps({"type": "invoice_paid", "data": {"invoice": "inv-7", "amount_cents": 1250}})
    answer = httpx.post(
        f"{stack.config.gateway_url}/hooks/demo",
        content=body,
        headers={"content-type": "application/json", **sign(config.signature, body, secret)},
        timeout=30,
    )
    assert answer.status_code == 202, answer.text
    [event_id] = answer.json()["ids"]

    db = DuckDBStore(stack.config.data_dir / "flowhook.duckdb", lock_timeout=60)
    deadline = time.monotonic() + 180
    stored: list[tuple[object, ...]] = []
    while time.monotonic() < deadline and not stored:
        stack.check_alive()
        if db.path.exists():
            stored = db.query("SELECT status, flow_run_id FROM events WHERE id = ?", [event_id])
        time.sleep(1.0)
    assert stored and stored[0][0] == "ok", stored

    # Queried as a user would: `flowhook sql`, whose catalog (the module) gives the typed view.
    query = f"SELECT invoice, amount, typeof(amount) AS kind FROM results_invoice_paid WHERE event_id = '{event_id}'"
    answered = _flowhook(["sql", query, "--format", "json"], cwd=copy, env=stack.env())
    assert answered.returncode == 0, answered.stderr
    assert orjson.loads(answered.stdout) == [{"invoice": "INV-7", "amount": 12.5, "kind": "DOUBLE"}]

    # The run that stored it is the new type's own deployment's, started by its trigger: the stack's scheduler is
    # off (no sweeper runs), and the test started no run itself.
    with stack.api() as api:
        run = api.get(f"flow_runs/{stored[0][1]}").raise_for_status().json()
        deployment = api.get(f"deployments/{run['deployment_id']}").raise_for_status().json()
    assert deployment["name"] == worker_deployment("invoice_paid").split("/")[-1]
