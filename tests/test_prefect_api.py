"""flowhook against a real Prefect server that guards its API with `PREFECT_SERVER_API_AUTH_STRING`: the gateway's
forwarder, the sweeper and `flowhook replay` get through with `PREFECT_API_AUTH_STRING`, and without it each
stops with one sentence that names the setting. One server for the module; the checks read back through the API
with httpx's own basic auth, not flowhook's headers."""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_KEY, PREFECT_API_URL, temporary_settings
from typer.testing import CliRunner

from flowhook.cli import app
from flowhook.gateway import BATCH_READY, PrefectEventSink
from flowhook.gateway.schemes import generate_secret, sign
from flowhook.prefect_api import api_headers
from flowhook.settings import Settings, get_settings
from flowhook.sources.webhook import SignatureConfig, SourceConfig
from flowhook.spool import Spool, State
from flowhook.spool.config import BatchPolicy
from flowhook.stack import LocalStack, StackConfig, free_port
from flowhook.store import DuckDBStore, StoredEvent
from flowhook.worker import sweeper
from flowhook.worker.config import DrainPolicy
from tasks.sweep import _launch
from tests.conftest import ROOT
from tests.factories import make_event
from tests.servers import serve

pytestmark = pytest.mark.slow

USER, PASSWORD = "flowhook", "s3cret-pass"
AUTH = f"{USER}:{PASSWORD}"
STANDARD = SignatureConfig()
SECRET = generate_secret(STANDARD)
EVENT_TYPE = "user_request"


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Prefect server (SQLite) whose API wants the auth string, with a `process-batch/user_request` deployment."""
    config = StackConfig(
        root=ROOT,
        data_dir=tmp_path_factory.mktemp("prefect-auth"),
        prefect_port=free_port(),
        extra_env={"PREFECT_SERVER_API_AUTH_STRING": AUTH},
    )
    stack = LocalStack(config, progress=lambda message: None)
    stack.logs.mkdir(parents=True, exist_ok=True)
    try:
        stack.start_server()
        with httpx.Client(base_url=config.api_url + "/", auth=(USER, PASSWORD), timeout=30) as api:
            flow_id = _created(api, "flows/", {"name": "process-batch"})
            _created(api, "deployments/", {"name": EVENT_TYPE, "flow_id": flow_id, "entrypoint": "flows/x.py:f"})
        # The stack's own calls (automations, run counts) send the auth string it gives its processes.
        assert stack.env()["PREFECT_API_AUTH_STRING"] == AUTH
        with stack.api() as api:
            assert api.post("automations/filter", json={}).status_code == 200
        yield config.api_url
    finally:
        stack.stop()


def _created(api: httpx.Client, path: str, body: dict[str, Any]) -> str:
    """POST a new object; a server on SQLite still starting its services may answer 503 (database locked) at first."""
    for _ in range(20):
        response = api.post(path, json=body)
        if response.status_code != 503:
            break
        time.sleep(0.5)
    created: str = response.raise_for_status().json()["id"]
    return created


def _held(api_url: str, name: str, **match: Any) -> list[dict[str, Any]]:
    """Events the server holds, read with basic auth of httpx's own."""
    body = {"filter": {"event": {"name": [name]}, "occurred": {"since": "2000-01-01T00:00:00Z"}}, "limit": 50}
    if match:
        body["filter"]["resource"] = match
    response = httpx.post(f"{api_url}/events/filter", json=body, auth=(USER, PASSWORD), timeout=30)
    events: list[dict[str, Any]] = response.raise_for_status().json()["events"]
    return events


def _client_auth(api_url: str, auth: str | None) -> Any:
    """Prefect's client-side settings of this process: flowhook's server, with or without the auth string."""
    return temporary_settings(
        updates={PREFECT_API_URL: api_url, PREFECT_API_AUTH_STRING: auth},
        restore_defaults={PREFECT_API_KEY} if auth else {PREFECT_API_KEY, PREFECT_API_AUTH_STRING},
    )


def test_the_server_is_guarded(api_url: str) -> None:
    assert httpx.post(f"{api_url}/events/filter", json={}, timeout=30).status_code == 401
    assert httpx.post(f"{api_url}/events/filter", json={}, auth=(USER, "wrong"), timeout=30).status_code == 401


def test_the_headers_are_those_of_prefects_client(api_url: str) -> None:
    from prefect.client.orchestration import get_client

    for auth in (AUTH, None):
        with _client_auth(api_url, auth):
            theirs = get_client(sync_client=True)._client.headers
            ours = api_headers()
        assert ours.get("Authorization") == theirs.get("Authorization")
        assert ours["X-PREFECT-API-VERSION"] == theirs["X-PREFECT-API-VERSION"]
    key = {PREFECT_API_URL: api_url, PREFECT_API_KEY: "pnu_key"}
    with temporary_settings(updates=key, restore_defaults={PREFECT_API_AUTH_STRING}):
        assert api_headers()["Authorization"] == get_client(sync_client=True)._client.headers["Authorization"]


def _settings(data_dir: Path, api_url: str) -> Settings:
    return Settings(
        data_dir=data_dir,
        webhook_secret=SECRET,
        sources={"shop": SourceConfig()},
        prefect_api_url=api_url,
        batch=BatchPolicy(max_events=50, max_seconds=0.1, hold_seconds=0),
        drain=DrainPolicy(idle_seconds=0),
    )


def _deliver(client: httpx.Client, count: int) -> None:
    for n in range(count):
        body = orjson.dumps({"type": EVENT_TYPE, "data": {"user_id": f"u{n}", "action": "search"}})
        headers = {"content-type": "application/json", **sign(STANDARD, body, SECRET, msg_id=f"m{n}-{uuid.uuid4()}")}
        assert client.post("/hooks/shop", content=body, headers=headers).status_code == 202


def _wait(predicate: Any, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.1)
    return bool(predicate())


def test_the_gateway_announces_batches_the_server_then_holds(tmp_path: Path, api_url: str) -> None:
    settings = _settings(tmp_path, api_url)
    with _client_auth(api_url, AUTH):
        sink = PrefectEventSink(api_url)
    spool = Spool(settings.spool_dir)
    with serve(settings, sink) as client:
        _deliver(client, 5)
        assert _wait(lambda: client.get("/health").json()["forwarded"] >= 1)
        assert client.get("/health").json()["forward_refused"] is None
    sent = [batch_id for batch_id, _ in spool.entries(State.SENT)]
    assert sent and not list(spool.entries(State.READY))
    for batch_id in sent:
        assert _wait(lambda b=batch_id: bool(_held(api_url, BATCH_READY, id=[f"flowhook.batch.{b}"])), timeout=10)
    held = _held(api_url, BATCH_READY, id=[f"flowhook.batch.{batch_id}" for batch_id in sent])
    assert sum(event["payload"]["count"] for event in held) == 5


def test_without_the_auth_string_the_gateway_logs_the_refusal_once_and_keeps_the_batches(
    tmp_path: Path, api_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(tmp_path, api_url)
    with _client_auth(api_url, None):
        sink = PrefectEventSink(api_url)
    spool = Spool(settings.spool_dir)
    caplog.set_level(logging.WARNING, logger="flowhook.gateway.forwarder")
    with serve(settings, sink) as client:
        _deliver(client, 3)
        assert _wait(lambda: client.get("/health").json()["forward_failures"] >= 4)  # 0.1 + 0.2 + 0.4 s of backoff
        health = client.get("/health").json()
    # The forwarder's own refusal, once; the start-up check of the types' deployments says it too, once, apart.
    refusals = [r.getMessage() for r in caplog.records if "answered 401" in r.getMessage()]
    assert sorted(r.name for r in caplog.records if "answered 401" in r.getMessage()) == [
        "flowhook.deployments.agreement",
        "flowhook.gateway.forwarder",
    ], refusals
    assert "PREFECT_API_AUTH_STRING" in refusals[0] and "Traceback" not in caplog.text
    assert PASSWORD not in caplog.text
    assert health["forwarded"] == 0 and "answered 401" in health["forward_refused"]
    assert list(spool.entries(State.READY)) and not list(spool.entries(State.SENT))  # nothing lost: they wait


def _age(spool: Spool, batch_id: str) -> None:
    """Make a READY batch an hour old: stale for the sweeper."""
    then = time.time() - 3600
    os.utime(spool.path(State.READY, batch_id), (then, then))


def _stale_batch(spool: Spool) -> str:
    ref = spool.write_batch([make_event(1, EVENT_TYPE, data={"user_id": "u1", "action": "search"})])
    _age(spool, ref.batch_id)
    return ref.batch_id


def _runs_for(api_url: str, batch_id: str) -> list[dict[str, Any]]:
    body = {"flow_runs": {"tags": {"all_": ["flowhook", EVENT_TYPE]}}}
    runs = httpx.post(f"{api_url}/flow_runs/filter", json=body, auth=(USER, PASSWORD), timeout=30).json()
    return [run for run in runs if run["parameters"]["batch"]["batch_id"] == batch_id]


def _sweep(spool: Spool) -> sweeper.SweepResult:
    return sweeper.sweep(spool, unclaimed_after=30, claimed_after=600, launch=_launch)


def test_the_sweeper_launches_with_the_auth_string_and_says_why_not_without(tmp_path: Path, api_url: str) -> None:
    spool = Spool(tmp_path / "spool")
    refused_batch = _stale_batch(spool)
    with _client_auth(api_url, None):
        result = _sweep(spool)
    assert [ref.batch_id for ref in result.launched] == []
    [(ref, error)] = result.failed
    assert ref.batch_id == refused_batch
    assert "answered 401" in error and "neither PREFECT_API_AUTH_STRING nor PREFECT_API_KEY is set" in error

    _age(spool, refused_batch)
    with _client_auth(api_url, AUTH):
        result = _sweep(spool)
    assert [ref.batch_id for ref in result.launched] == [refused_batch] and not result.failed
    assert len(_runs_for(api_url, refused_batch)) == 1  # the server holds the run, with the batch as parameter


def _dead_letter(database: Path) -> None:
    at = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    failed = StoredEvent(
        id=f"dead-{uuid.uuid4()}",
        type=EVENT_TYPE,
        source="test",
        occurred=at,
        received=at,
        emitted=at,
        started=at,
        stored=None,
        batch_id="b-original",
        flow_run_id="run-1",
        status="failed",
        error="RuntimeError: broken",
        data={"user_id": "u1", "action": "search"},
        result=None,
        attempts=3,
    )
    DuckDBStore(database).write_events([failed], stored=at + timedelta(minutes=1))


@pytest.fixture
def cli_env(tmp_path: Path, api_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("FLOWHOOK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FLOWHOOK_PREFECT_API_URL", api_url)
    monkeypatch.setenv("COLUMNS", "400")
    get_settings.cache_clear()
    _dead_letter(get_settings().database)
    yield tmp_path
    get_settings.cache_clear()


def test_replay_launches_with_the_auth_string_and_fails_clearly_without(cli_env: Path, api_url: str) -> None:
    runner = CliRunner()
    with _client_auth(api_url, None):
        refused = runner.invoke(app, ["replay"])
    assert refused.exit_code == 1, refused.output
    assert "answered 401" in refused.stderr and "PREFECT_API_AUTH_STRING" in refused.stderr
    assert "Traceback" not in refused.output
    spool = Spool(cli_env / "spool")
    [(waiting, _)] = list(spool.entries(State.READY))  # not lost: it waits for the sweeper

    _age(spool, waiting)
    with _client_auth(api_url, AUTH):
        result = _sweep(spool)
    assert [ref.batch_id for ref in result.launched] == [waiting]

    _dead_letter(get_settings().database)  # another one, replayed with the auth string this time
    with _client_auth(api_url, AUTH):
        launched = runner.invoke(app, ["replay"])
    assert launched.exit_code == 0, launched.output
    batch_id = launched.output.split(" launched for ")[1].split()[0]
    assert len(_runs_for(api_url, batch_id)) == 1


class _Refusing:
    """A sink Prefect refuses `times` times (401), then takes."""

    def __init__(self, times: int) -> None:
        self.left = times
        self.sent: list[str] = []

    async def emit(self, refs: Any) -> None:
        if self.left:
            self.left -= 1
            request = httpx.Request("POST", "http://prefect.test/api/events")
            raise httpx.HTTPStatusError("refused", request=request, response=httpx.Response(401, request=request))
        self.sent += [ref.batch_id for ref in refs]


def test_the_forwarder_says_once_when_refused_and_once_when_taken_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio

    from flowhook.gateway.forwarder import Forwarder

    spool = Spool(tmp_path / "spool")
    ref = spool.write_batch([make_event(1, EVENT_TYPE)])
    sink = _Refusing(times=4)
    forwarder = Forwarder(spool, sink, max_backoff=0.05)
    caplog.set_level(logging.INFO, logger="flowhook.gateway.forwarder")

    async def run() -> None:
        task = asyncio.create_task(forwarder.run())
        forwarder.submit(ref)
        while not sink.sent:
            await asyncio.sleep(0.01)
        task.cancel()

    asyncio.run(asyncio.wait_for(run(), 10))
    lines = [record.getMessage() for record in caplog.records]
    assert len([line for line in lines if "answered 401" in line]) == 1, lines
    assert len([line for line in lines if "accepts the forwarder's credentials again" in line]) == 1, lines
    assert forwarder.failures == 4 and forwarder.refused is None and sink.sent == [ref.batch_id]
