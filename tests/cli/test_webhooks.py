"""`flowhook secret` and `flowhook quarantine` over a real data folder and the shipped sources.yaml."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner, Result

from flowhook.cli import app
from flowhook.events import derive_event_id
from flowhook.gateway import MemorySink
from flowhook.gateway.intake import Delivery
from flowhook.gateway.quarantine import Quarantine, quarantined
from flowhook.gateway.schemes import sign
from flowhook.gateway.secrets import secret_store
from flowhook.settings import get_settings
from flowhook.sources.webhook import SignatureConfig
from flowhook.spool import Spool, State
from flowhook.stack import free_port
from tests.servers import events_api, serve

runner = CliRunner()
STANDARD = SignatureConfig()


@pytest.fixture
def data_dir(tmp_path: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    data = tmp_path / "data"
    monkeypatch.setenv("FLOWHOOK_DATA_DIR", str(data))
    monkeypatch.setenv("FLOWHOOK_SOURCES_FILE", str(repo_root / "sources.yaml"))
    monkeypatch.delenv("FLOWHOOK_WEBHOOK_SECRET", raising=False)
    get_settings.cache_clear()
    yield data
    get_settings.cache_clear()


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args))


def failed(result: Result) -> str:
    """The one-line error of a command that exited 1 cleanly, whitespace folded."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    text = " ".join(result.output.split())
    assert text.startswith("error: ")
    return text


def show(source: str) -> str:
    result = invoke("secret", "show", source)
    assert result.exit_code == 0, result.output
    [secret] = result.output.splitlines()
    return secret


def test_secret_show_prints_the_secret_the_gateway_checks(data_dir: Path) -> None:
    secret = show("demo")
    assert secret.startswith("whsec_")
    assert show("demo") == secret
    assert (data_dir / "secrets" / "demo.json").exists()

    body = orjson.dumps({"type": "user_request", "data": {"user_id": "u1", "action": "search"}})
    headers = {**sign(STANDARD, body, secret, msg_id="msg_cli"), "content-type": "application/json"}
    with serve(get_settings(), MemorySink()) as client:
        response = client.post("/hooks/demo", content=body, headers=headers)
    assert response.status_code == 202, response.text
    assert response.json()["ids"] == [derive_event_id("demo", "msg_cli")]


def test_secret_rotate_prints_a_new_secret_once_and_keeps_the_old_one_for_the_grace(data_dir: Path) -> None:
    old = show("demo")
    result = invoke("secret", "rotate", "demo")
    assert result.exit_code == 0, result.output
    new = result.output.splitlines()[-1]
    assert new.startswith("whsec_")
    assert new != old
    assert result.output.count(new) == 1
    assert old not in result.output
    assert "24 h" in " ".join(result.output.split())

    assert show("demo") == new
    settings = get_settings()
    assert secret_store(settings).secrets("demo", settings.source_configs()["demo"]) == [new, old]


def test_secret_rotate_of_an_env_referenced_source_says_where_to_rotate(data_dir: Path) -> None:
    text = failed(invoke("secret", "rotate", "stripe"))
    assert "source 'stripe' takes its secret from env:STRIPE_WEBHOOK_SECRET: rotate it there" in text
    assert not (data_dir / "secrets" / "stripe.json").exists()


def test_secret_show_of_an_unknown_source_names_the_configured_ones(data_dir: Path) -> None:
    text = failed(invoke("secret", "show", "nosuch"))
    configured = "cloudevents, demo, emit, files, github, schedule, sqs, stripe"
    assert f"no source is named 'nosuch'; configured: {configured}" in text
    assert not (data_dir / "secrets").exists()


# --- quarantine -------------------------------------------------------------------------------------------

SIGNED_AT = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def put_template_failure(data_dir: Path) -> str:
    """What the gateway keeps when source `signup`'s template reads a field senders do not send."""
    delivery = Delivery(
        source="signup",
        body=orjson.dumps({"user": {"id": "u7"}}),
        headers={"content-type": "application/json", "webhook-id": "msg_q1", "webhook-timestamp": "1714557600"},
        delivery_id="msg_q1",
        signed_at=SIGNED_AT,
    )
    errors = [{"loc": ["template"], "line": 1, "msg": "'dict object' has no attribute 'customer'"}]
    item = quarantined(
        delivery,
        received=SIGNED_AT,
        code="template_error",
        message="The template failed on line 1: 'dict object' has no attribute 'customer'.",
        errors=errors,
    )
    Quarantine(data_dir / "quarantine").put(item)
    return item.id


def test_quarantine_list_json_shows_each_item_without_its_body(data_dir: Path) -> None:
    item_id = put_template_failure(data_dir)
    result = invoke("quarantine", "list", "--json")
    assert result.exit_code == 0, result.output
    [listed] = json.loads(result.output)
    assert listed["id"] == item_id
    assert (listed["source"], listed["code"], listed["delivery_id"]) == ("signup", "template_error", "msg_q1")
    assert listed["errors"][0]["msg"] == "'dict object' has no attribute 'customer'"
    assert "body" not in listed

    only_other = invoke("quarantine", "list", "--json", "--source", "github")
    assert json.loads(only_other.output) == []


def fixed_sources(folder: Path) -> Path:
    """A sources file whose `signup` template now reads the field the quarantined delivery has."""
    path = folder / "sources.yaml"
    path.write_text(
        "sources:\n"
        "  signup:\n"
        "    format: template\n"
        "    template: |\n"
        '      {"type": "user_request", "data": {"user_id": {{ body.user.id | tojson }}, "action": "signup"}}\n'
    )
    return path


def test_quarantine_replay_all_spools_what_a_fixed_source_now_maps(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    item_id = put_template_failure(data_dir)
    fixed = fixed_sources(tmp_path)
    monkeypatch.setenv("FLOWHOOK_SOURCES_FILE", str(fixed))
    monkeypatch.setenv("FLOWHOOK_PREFECT_API_URL", f"http://127.0.0.1:{free_port()}/api")  # Prefect is down
    get_settings.cache_clear()

    result = invoke("quarantine", "replay", "--all")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert f"{item_id}: replayed as user_request-" in text
    assert "the sweeper will launch these batches" in text

    assert Quarantine(data_dir / "quarantine").items() == []
    spool = Spool(data_dir / "spool")
    [(batch_id, _)] = list(spool.entries(State.READY))
    [event] = spool.read(spool.path(State.READY, batch_id))
    assert event.id == derive_event_id("signup", "msg_q1")
    assert (event.type, event.data["user_id"], event.occurred) == ("user_request", "u7", SIGNED_AT)


@pytest.fixture
def prefect_events() -> Iterator[tuple[str, list[Any]]]:
    """A stand-in for a reachable Prefect API (`POST /api/events`) on a free port."""
    port = free_port()
    with events_api(port) as received:
        yield f"http://127.0.0.1:{port}/api", received


def test_quarantine_replay_all_announces_the_batches_when_prefect_is_up(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_events: tuple[str, list[Any]]
) -> None:
    put_template_failure(data_dir)
    fixed = fixed_sources(tmp_path)
    api_url, received = prefect_events
    monkeypatch.setenv("FLOWHOOK_SOURCES_FILE", str(fixed))
    monkeypatch.setenv("FLOWHOOK_PREFECT_API_URL", api_url)
    get_settings.cache_clear()

    result = invoke("quarantine", "replay", "--all")
    spool = Spool(data_dir / "spool")
    [(batch_id, _)] = list(spool.entries(State.SENT))  # announced, so moved on from ready/
    [announced] = received
    assert announced["payload"]["batch_id"] == batch_id
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("args", [[], ["0000000000000000-deadbeef", "--all"]])
def test_quarantine_replay_needs_ids_or_all(data_dir: Path, args: list[str]) -> None:
    item_id = put_template_failure(data_dir)
    text = failed(invoke("quarantine", "replay", *args))
    assert "name quarantine ids, or pass --all" in text
    assert [item.id for item in Quarantine(data_dir / "quarantine").items()] == [item_id]
