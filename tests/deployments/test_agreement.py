"""Catalog and Prefect agree, read from a real Prefect server: each type beside its worker deployment and the
triggers `prefect deploy` made of its prefect.yaml entry; the gateway warns at start-up about a type with no
deployment, without waiting for a Prefect that does not answer; `flowhook status` shows them side by side."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.cli.deploy._triggers import _create_deployment_triggers, _initialize_deployment_triggers
from prefect.client.orchestration import get_client
from typer.testing import CliRunner

from flowhook.cli import app
from flowhook.deployments import Trigger, TypeDeployment, type_deployments, worker_trigger
from flowhook.events.builtin import DATA_UPDATE, SCHEDULED_TICK, USER_REQUEST
from flowhook.gateway import PrefectEventSink
from flowhook.names import WORKER_FLOW, worker_deployment
from flowhook.settings import Settings, get_settings
from tests.servers import prefect_server, serve

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

TYPES = [DATA_UPDATE, SCHEDULED_TICK, USER_REQUEST]
TRIGGER = worker_trigger(USER_REQUEST)["name"]
runner = CliRunner()


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Prefect server where user_request is deployed with its trigger, data_update is deployed paused with
    its trigger disabled, and scheduled_tick has no deployment."""
    with prefect_server(tmp_path_factory.mktemp("agreement")) as api_url:
        asyncio.run(_deploy())
        yield api_url


async def _deploy() -> None:
    async with get_client() as client:
        flow_id = await client.create_flow_from_name(WORKER_FLOW)
        for name, enabled in ((USER_REQUEST, True), (DATA_UPDATE, False)):
            deployment_id = await client.create_deployment(flow_id, name, paused=not enabled)
            spec = {**worker_trigger(name), "enabled": enabled}
            await _create_deployment_triggers(
                client,
                deployment_id,
                _initialize_deployment_triggers(worker_deployment(name), [spec]),  # type: ignore[arg-type]
            )
        other = await client.create_flow_from_name("another-flow")
        await client.create_deployment(other, SCHEDULED_TICK)  # the type's name, but not the worker flow's


def _settings(tmp_path: Path, api_url: str) -> Settings:
    return Settings(data_dir=tmp_path, prefect_api_url=api_url, sources={})


def test_each_type_is_read_with_its_deployment_and_triggers(prefect_api: str) -> None:
    found = asyncio.run(type_deployments(prefect_api, TYPES))
    assert found == [
        TypeDeployment(
            DATA_UPDATE,
            worker_deployment(DATA_UPDATE),
            deployed=True,
            paused=True,
            triggers=(Trigger(worker_trigger(DATA_UPDATE)["name"], enabled=False),),
        ),
        TypeDeployment(SCHEDULED_TICK, worker_deployment(SCHEDULED_TICK), deployed=False),
        TypeDeployment(
            USER_REQUEST, worker_deployment(USER_REQUEST), deployed=True, triggers=(Trigger(TRIGGER, enabled=True),)
        ),
    ]
    assert [row.triggered for row in found] == [False, False, True]


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "flowhook.deployments.agreement"]


def test_the_gateway_warns_once_about_the_type_without_a_deployment(
    prefect_api: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="flowhook.deployments.agreement")
    with serve(_settings(tmp_path, prefect_api), sink=PrefectEventSink(prefect_api)) as client:
        deadline = time.monotonic() + 30
        while not _warnings(caplog) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        assert client.get("/health").status_code == 200
    # Once, for the one built-in type left undeployed (types other tests registered in this process may warn too).
    [warning] = [w for w in _warnings(caplog) if f"event type {SCHEDULED_TICK!r}" in w]
    assert f"event type {SCHEDULED_TICK!r} has no deployment {worker_deployment(SCHEDULED_TICK)}" in warning
    assert not any("user_request" in w or "data_update" in w for w in _warnings(caplog))
    assert "flowhook deployments generate" in warning


def test_a_prefect_that_does_not_answer_does_not_delay_the_gateway(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="flowhook.deployments.agreement")
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts connections (the kernel does), never answers
        api_url = f"http://127.0.0.1:{silent.getsockname()[1]}/api"
        started = time.monotonic()
        with serve(_settings(tmp_path, api_url), sink=PrefectEventSink(api_url)) as client:
            assert client.get("/health").status_code == 200
            assert time.monotonic() - started < 4.0  # the check waits up to 5 s, in the background
            assert _warnings(caplog) == []


def test_a_refused_connection_is_one_warning_that_the_check_could_not_be_made(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="flowhook.deployments.agreement")
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    api_url = f"http://127.0.0.1:{port}/api"
    with serve(_settings(tmp_path, api_url), sink=PrefectEventSink(api_url)):
        deadline = time.monotonic() + 30
        while not _warnings(caplog) and time.monotonic() < deadline:
            time.sleep(0.05)
    [warning] = _warnings(caplog)
    assert warning.startswith(f"could not check the event types' deployments at {api_url}: ConnectError")


@pytest.fixture
def status_env(prefect_api: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("FLOWHOOK_PREFECT_API_URL", prefect_api)
    monkeypatch.delenv("FLOWHOOK_EVENT_MODULES", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_status_json_lists_each_type_with_its_deployment_and_triggers(status_env: None, prefect_api: str) -> None:
    result = runner.invoke(app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.stdout)
    assert status["prefect"] == {"api_url": prefect_api, "error": None}
    by_type = {row["type"]: row for row in status["types"]}
    assert by_type[USER_REQUEST] == {
        "type": USER_REQUEST,
        "deployment": worker_deployment(USER_REQUEST),
        "deployed": True,
        "paused": False,
        "triggers": [{"name": TRIGGER, "enabled": True}],
    }
    assert by_type[SCHEDULED_TICK]["deployed"] is False and by_type[SCHEDULED_TICK]["triggers"] == []
    assert by_type[DATA_UPDATE]["paused"] is True


def test_status_shows_them_side_by_side(status_env: None) -> None:
    result = runner.invoke(app, ["status"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.split()[:1] in ([t] for t in TYPES)}
    assert worker_deployment(USER_REQUEST) in rows[USER_REQUEST] and TRIGGER in rows[USER_REQUEST]
    assert "none" in rows[SCHEDULED_TICK] and "flowhook deployments generate" in rows[SCHEDULED_TICK]
    assert "(paused)" in rows[DATA_UPDATE] and "(disabled)" in rows[DATA_UPDATE]
