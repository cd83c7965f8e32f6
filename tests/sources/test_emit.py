"""`flowhook.emit` through a live gateway: validated, durable, keyed, and clear when refused."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import SecretStr

import flowhook
from flowhook.events import derive_event_id
from flowhook.gateway.config import IngressLimits
from flowhook.gateway.schemes import generate_secret
from flowhook.gateway.secrets import signing_secret
from flowhook.settings import Settings
from flowhook.sources.emit import EmitError, emit_many, item
from flowhook.sources.sink import DeliveryFailed, GatewaySink
from flowhook.sources.webhook import SignatureConfig
from flowhook.stack import free_port
from tests.factories import spooled_events
from tests.servers import serve


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


@pytest.mark.parametrize("busy_seconds", [10.0, 0.0])
def test_an_overloaded_gateway_is_waited_out_with_the_same_delivery(tmp_path: Path, busy_seconds: float) -> None:
    # One request in flight at a time: eight threads' deliveries find it busy and are answered 503 overloaded.
    base = Settings(data_dir=tmp_path, sources_file=tmp_path / "none.yaml", ingress=IngressLimits(max_in_flight=1))
    with serve(base) as client:
        settings = base.model_copy(update={"gateway_port": client.base_url.port})
        config = settings.source_configs()["emit"]
        sink = GatewaySink(
            str(client.base_url), "emit", config, signing_secret(settings, "emit"), busy_seconds=busy_seconds
        )

        def send(n: int) -> list[str] | DeliveryFailed:
            try:
                return sink.deliver(
                    [item("user_request", {"user_id": f"u{n}", "action": "search"})], delivery_id=f"d{n}"
                )
            except DeliveryFailed as exc:
                return exc

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(send, range(400)))
        sink.close()
    failed = [a for a in answers if isinstance(a, DeliveryFailed)]
    acked = {event_id for a in answers if not isinstance(a, DeliveryFailed) for event_id in a}
    # A delivery of a list of one: its event's id is derived from the delivery id and index 0.
    assert acked == {
        derive_event_id("emit", f"d{n}", 0) for n, a in enumerate(answers) if not isinstance(a, DeliveryFailed)
    }
    assert spooled_ids(settings) == acked  # an overloaded answer stored nothing; a retried delivery is stored once
    if busy_seconds:
        assert failed == [] and sink.busy_retries > 0
    else:  # the caller's to handle: the same load, without waiting it out
        assert failed and {(f.status, f.body["code"]) for f in failed} == {(503, "overloaded")}
        assert sink.busy_retries == 0
