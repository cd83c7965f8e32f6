"""`flowhook.emit` through a live gateway: validated, durable, keyed, and clear when refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

import flowhook
from flowhook.events import derive_event_id
from flowhook.gateway.schemes import generate_secret
from flowhook.settings import Settings
from flowhook.sources.emit import EmitError, emit_many, item
from flowhook.sources.webhook import SignatureConfig
from flowhook.stack import free_port
from tests.factories import spooled_events


def spooled_ids(settings: Settings) -> set[str]:
    return {event.id for event in spooled_events(settings.spool_dir)}


def test_emit_returns_the_id_of_a_durable_event(settings: Settings) -> None:
    event_id = flowhook.emit("user_request", {"user_id": "u1", "action": "search"}, id="job-42", settings=settings)
    assert event_id == derive_event_id("emit", "job-42")
    assert event_id in spooled_ids(settings)
    # The same id again is the same event.
    again = flowhook.emit("user_request", {"user_id": "u1", "action": "search"}, id="job-42", settings=settings)
    assert again == event_id


def test_emit_many_is_all_or_nothing_and_says_which_field(settings: Settings) -> None:
    good = item("scheduled_tick", {"schedule": "s", "tick": "2026-01-01T00:00:00Z"})
    bad = item("user_request", {"action": "search"})  # no user_id
    with pytest.raises(EmitError) as refused:
        emit_many([good, bad], settings=settings)
    assert "422" in str(refused.value)
    assert any(error["loc"] == ["data", "user_id"] and error["index"] == 1 for error in refused.value.errors)
    assert spooled_ids(settings) == set()
    assert len(emit_many([good, good | {"id": "other"}], settings=settings)) == 2


def test_a_refused_signature_is_an_emit_error(settings: Settings) -> None:
    impostor = settings.model_copy(update={"webhook_secret": SecretStr(generate_secret(SignatureConfig()))})
    with pytest.raises(EmitError, match="401"):
        flowhook.emit("user_request", {"user_id": "u1", "action": "search"}, settings=impostor)
    assert spooled_ids(settings) == set()


def test_a_gateway_that_is_not_there_is_an_emit_error(tmp_path: Path) -> None:
    nowhere = Settings(data_dir=tmp_path, sources_file=tmp_path / "none.yaml", gateway_port=free_port())
    with pytest.raises(EmitError, match="unreachable") as refused:
        flowhook.emit("user_request", {"user_id": "u1", "action": "search"}, settings=nowhere)
    assert refused.value.errors == []
