"""The shipped sources.yaml (demo, github, stripe, cloudevents) through the live gateway, fed what
each sender really posts: the GitHub and Stripe fixtures, CloudEvents in both HTTP modes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from flowhook.events import derive_event_id
from flowhook.gateway import MemorySink
from flowhook.gateway.schemes import generate_secret, sign
from flowhook.gateway.secrets import secret_store
from flowhook.settings import LOCAL_SOURCES, Settings
from flowhook.sources.webhook import SignatureConfig
from flowhook.spool.config import BatchPolicy
from tests.factories import spooled_events
from tests.servers import serve

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
GITHUB_PUSH = (FIXTURES / "github_push.json").read_bytes()
STRIPE_INVOICE_PAID = (FIXTURES / "stripe_invoice_paid.json").read_bytes()
STRIPE_SECRET = generate_secret(SignatureConfig(scheme="stripe"))


@pytest.fixture
def shipped(
    tmp_path: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[httpx.Client, Settings]]:
    """The gateway serving the repository's own sources.yaml; batches stay open so the spool reads stably."""
    monkeypatch.delenv("FLOWHOOK_WEBHOOK_SECRET", raising=False)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", STRIPE_SECRET)
    settings = Settings(
        data_dir=tmp_path, sources_file=repo_root / "sources.yaml", batch=BatchPolicy(max_seconds=60, hold_seconds=0)
    )
    assert set(settings.source_configs()) == {"demo", "github", "stripe", "cloudevents", *LOCAL_SOURCES}
    with serve(settings, MemorySink()) as client:
        yield client, settings


def signature(settings: Settings, source: str) -> SignatureConfig:
    return settings.source_configs()[source].signature


def managed_secret(settings: Settings, source: str) -> str:
    """The secret flowhook made for a source at startup (what `flowhook secret show` prints)."""
    return secret_store(settings).secrets(source, settings.source_configs()[source])[0]


def accepted(response: httpx.Response, count: int) -> list[str]:
    assert response.status_code == 202, response.text
    payload = response.json()
    assert payload["accepted"] == count
    assert len(payload["ids"]) == count
    ids: list[str] = payload["ids"]
    return ids


# --- GitHub ------------------------------------------------------------------------------------------


def github_headers(
    settings: Settings, body: bytes, *, event: str = "push", delivery: str | None = None
) -> dict[str, str]:
    signed = sign(signature(settings, "github"), body, managed_secret(settings, "github"), msg_id=delivery)
    return {**signed, "x-github-event": event, "content-type": "application/json"}


def test_a_github_push_becomes_one_data_update_keyed_on_the_delivery(shipped: tuple[httpx.Client, Settings]) -> None:
    client, settings = shipped
    push = orjson.loads(GITHUB_PUSH)
    headers = github_headers(settings, GITHUB_PUSH)
    delivery = headers["X-GitHub-Delivery"]

    [event_id] = accepted(client.post("/hooks/github", content=GITHUB_PUSH, headers=headers), 1)
    assert event_id == derive_event_id("github", delivery)
    [event] = spooled_events(settings.spool_dir)
    assert (event.id, event.type, event.source) == (event_id, "data_update", "github")
    assert event.data == {
        "dataset": "octo-org/pipeline-data",
        "uri": push["compare"],
        "rows": 3,
        "operation": "update",
        "checksum": push["after"],
        "size_bytes": None,
    }
    assert event.occurred == datetime.fromisoformat("2024-05-01T11:58:12+02:00")

    # GitHub's "Redeliver" posts the same delivery id: the same event id, a no-op downstream.
    again = client.post("/hooks/github", content=GITHUB_PUSH, headers=headers)
    assert accepted(again, 1) == [event_id]
    assert {e.id for e in spooled_events(settings.spool_dir)} == {event_id}


def test_a_github_ping_is_accepted_and_maps_to_no_event(shipped: tuple[httpx.Client, Settings]) -> None:
    client, settings = shipped
    body = orjson.dumps({"zen": "Keep it logically awesome.", "hook_id": 468, "hook": {"type": "Repository"}})
    response = client.post("/hooks/github", content=body, headers=github_headers(settings, body, event="ping"))
    assert accepted(response, 0) == []
    assert spooled_events(settings.spool_dir) == []
    assert client.get("/health").json()["quarantined"] == 0


def test_a_tampered_github_body_is_401(shipped: tuple[httpx.Client, Settings]) -> None:
    client, settings = shipped
    headers = github_headers(settings, GITHUB_PUSH)
    tampered = GITHUB_PUSH.replace(b'"deleted": false', b'"deleted": true ')
    assert tampered != GITHUB_PUSH
    response = client.post("/hooks/github", content=tampered, headers=headers)
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "invalid_signature"
    assert spooled_events(settings.spool_dir) == []


# --- Stripe ------------------------------------------------------------------------------------------


def stripe_headers(settings: Settings, body: bytes, **kwargs: Any) -> dict[str, str]:
    return {**sign(signature(settings, "stripe"), body, STRIPE_SECRET, **kwargs), "content-type": "application/json"}


def test_a_stripe_invoice_paid_becomes_a_user_request_keyed_on_the_stripe_event(
    shipped: tuple[httpx.Client, Settings],
) -> None:
    client, settings = shipped
    invoice = orjson.loads(STRIPE_INVOICE_PAID)["data"]["object"]

    first = stripe_headers(settings, STRIPE_INVOICE_PAID)
    [event_id] = accepted(client.post("/hooks/stripe", content=STRIPE_INVOICE_PAID, headers=first), 1)
    assert event_id == derive_event_id("stripe", "evt_1PBqXJ2eZvKYlo2CKx7sQ3mN")
    [event] = spooled_events(settings.spool_dir)
    assert (event.type, event.source) == ("user_request", "stripe")
    assert event.data["user_id"] == invoice["customer"] == "cus_Q1xY2zA3bC4dE5"
    assert event.data["amount_cents"] == invoice["amount_paid"] == 4900
    assert event.data["action"] == "invoice.paid"
    assert event.data["path"] == invoice["hosted_invoice_url"]
    assert event.occurred == datetime.fromtimestamp(1714557600, UTC)

    # Stripe retries the same event with a fresh signature timestamp: a different header, the same id.
    retry = stripe_headers(settings, STRIPE_INVOICE_PAID, timestamp=time.time() - 90)
    assert retry["Stripe-Signature"] != first["Stripe-Signature"]
    assert accepted(client.post("/hooks/stripe", content=STRIPE_INVOICE_PAID, headers=retry), 1) == [event_id]


def test_other_stripe_event_types_are_accepted_and_map_to_no_event(shipped: tuple[httpx.Client, Settings]) -> None:
    client, settings = shipped
    body = orjson.dumps(
        {
            "id": "evt_1PBr0a2eZvKYlo2C5nWq8xYz",
            "object": "event",
            "created": 1714557700,
            "type": "customer.created",
            "data": {"object": {"id": "cus_Q1xY2zA3bC4dE5", "object": "customer", "email": "jenny.rosen@example.com"}},
        }
    )
    response = client.post("/hooks/stripe", content=body, headers=stripe_headers(settings, body))
    assert accepted(response, 0) == []
    assert spooled_events(settings.spool_dir) == []


def test_a_stripe_signature_older_than_the_tolerance_is_401(shipped: tuple[httpx.Client, Settings]) -> None:
    client, settings = shipped
    tolerance = signature(settings, "stripe").tolerance_seconds
    headers = stripe_headers(settings, STRIPE_INVOICE_PAID, timestamp=time.time() - tolerance - 30)
    response = client.post("/hooks/stripe", content=STRIPE_INVOICE_PAID, headers=headers)
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "stale_timestamp"
    assert spooled_events(settings.spool_dir) == []


# --- CloudEvents ---------------------------------------------------------------------------------------

UPDATE = {"dataset": "warehouse.sales", "uri": "s3://lake/sales/2024-05-01.parquet", "rows": 1200}


def cloudevent_headers(settings: Settings, body: bytes, content_type: str, **extra: str) -> dict[str, str]:
    signed = sign(signature(settings, "cloudevents"), body, managed_secret(settings, "cloudevents"))
    assert "x-signature-timestamp" in signed
    return {**signed, "content-type": content_type, **extra}


def post_structured(client: httpx.Client, settings: Settings, ce_id: str, ce_source: str) -> httpx.Response:
    body = orjson.dumps(
        {
            "specversion": "1.0",
            "id": ce_id,
            "source": ce_source,
            "type": "data_update",
            "time": "2024-05-01T10:00:00Z",
            "datacontenttype": "application/json",
            "data": UPDATE,
        }
    )
    headers = cloudevent_headers(settings, body, "application/cloudevents+json")
    return client.post("/hooks/cloudevents", content=body, headers=headers)


def post_binary(client: httpx.Client, settings: Settings, ce_id: str, ce_source: str) -> httpx.Response:
    body = orjson.dumps(UPDATE)
    attributes = {"ce-specversion": "1.0", "ce-id": ce_id, "ce-source": ce_source, "ce-type": "data_update"}
    headers = cloudevent_headers(settings, body, "application/json", **attributes)
    return client.post("/hooks/cloudevents", content=body, headers=headers)


def test_cloudevents_in_structured_and_binary_mode_are_keyed_on_id_and_source(
    shipped: tuple[httpx.Client, Settings],
) -> None:
    client, settings = shipped
    [structured] = accepted(post_structured(client, settings, "ev-1", "/loader/eu"), 1)
    [binary] = accepted(post_binary(client, settings, "ev-1", "/loader/us"), 1)
    [other_id] = accepted(post_binary(client, settings, "ev-2", "/loader/us"), 1)
    assert structured == derive_event_id("cloudevents", "ev-1@/loader/eu")
    assert binary == derive_event_id("cloudevents", "ev-1@/loader/us")
    assert len({structured, binary, other_id}) == 3

    # A redelivery, freshly signed, in either mode: the same ids again.
    assert accepted(post_structured(client, settings, "ev-1", "/loader/eu"), 1) == [structured]
    assert accepted(post_binary(client, settings, "ev-1", "/loader/us"), 1) == [binary]

    events = {event.id: event for event in spooled_events(settings.spool_dir)}
    assert set(events) == {structured, binary, other_id}
    for event in events.values():
        assert (event.type, event.source) == ("data_update", "cloudevents")
        assert event.data == {**UPDATE, "operation": "insert", "checksum": None, "size_bytes": None}
    assert events[structured].occurred == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def test_a_cloudevent_signed_without_its_timestamp_is_401(shipped: tuple[httpx.Client, Settings]) -> None:
    client, settings = shipped
    body = orjson.dumps({"specversion": "1.0", "id": "ev-1", "source": "/l", "type": "data_update", "data": UPDATE})
    headers = cloudevent_headers(settings, body, "application/cloudevents+json")
    del headers["x-signature-timestamp"]
    response = client.post("/hooks/cloudevents", content=body, headers=headers)
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "missing_signature"


# --- demo (Standard Webhooks, flowhook's own format) -------------------------------------------------------


def test_a_demo_list_of_three_events_is_accepted_whole(shipped: tuple[httpx.Client, Settings]) -> None:
    client, settings = shipped
    body = orjson.dumps(
        [
            {"type": "user_request", "data": {"user_id": "u1", "action": "checkout", "amount_cents": 1299}},
            {"type": "data_update", "data": {"dataset": "orders", "uri": "s3://lake/orders.parquet", "rows": 4}},
            {"type": "scheduled_tick", "data": {"schedule": "hourly", "tick": "2024-05-01T10:00:00Z"}},
        ]
    )
    signed = sign(signature(settings, "demo"), body, managed_secret(settings, "demo"), msg_id="msg_demo_1")
    response = client.post("/hooks/demo", content=body, headers={**signed, "content-type": "application/json"})
    ids = accepted(response, 3)
    assert ids == [derive_event_id("demo", "msg_demo_1", index) for index in range(3)]
    events = {event.id: event for event in spooled_events(settings.spool_dir)}
    assert [events[i].type for i in ids] == ["user_request", "data_update", "scheduled_tick"]
