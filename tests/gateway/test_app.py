"""The gateway app behind a real uvicorn server on a loopback socket, called over HTTP with httpx."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from standardwebhooks import Webhook

from flowhook.events import Event, derive_event_id
from flowhook.gateway import MemorySink
from flowhook.gateway.schemes import generate_secret, sign
from flowhook.settings import Settings
from flowhook.sources.webhook import SignatureConfig, SourceConfig
from flowhook.spool import BatchRef, Spool, State, new_batch_id
from flowhook.spool.batches import encode_event
from flowhook.spool.config import BatchPolicy
from flowhook.worker.config import DrainPolicy
from tests.factories import spooled_events
from tests.servers import serve

STANDARD = SignatureConfig()
SECRET = generate_secret(STANDARD)
SPOOLED = (State.OPEN, State.READY, State.SENT)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Callable[..., tuple[httpx.Client, MemorySink, Settings]]]:
    """Start a gateway with settings overrides; every one started is stopped at teardown."""
    with ExitStack() as running:

        def start(**overrides: Any) -> tuple[httpx.Client, MemorySink, Settings]:
            overrides = {"sources": {"shop": SourceConfig()}, **overrides}
            settings = Settings(data_dir=tmp_path, webhook_secret=SECRET, **overrides)
            sink = MemorySink()
            return running.enter_context(serve(settings, sink)), sink, settings

        yield start


def item(user_id: str = "u1", **data: Any) -> dict[str, Any]:
    return {"type": "user_request", "data": {"user_id": user_id, "action": "search", **data}}


def signed(body: bytes, msg_id: str, **sign_kwargs: Any) -> dict[str, str]:
    return {**sign(STANDARD, body, SECRET, msg_id=msg_id, **sign_kwargs), "content-type": "application/json"}


def post(client: httpx.Client, document: Any, *, msg_id: str = "msg_1", source: str = "shop") -> httpx.Response:
    body = document if isinstance(document, bytes) else orjson.dumps(document)
    return client.post(f"/hooks/{source}", content=body, headers=signed(body, msg_id))


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    payload: dict[str, Any] = response.json()
    assert payload["code"] == code
    assert isinstance(payload["message"], str)
    assert payload["message"]
    return payload


# --- accepting deliveries ------------------------------------------------------------------------------


def test_a_signed_delivery_is_on_disk_before_the_202_is_read(gateway: Callable[..., Any]) -> None:
    client, _, settings = gateway()
    body = orjson.dumps(item())
    with client.stream("POST", "/hooks/shop", content=body, headers=signed(body, "msg_1")) as response:
        assert response.status_code == 202
        on_disk = spooled_events(settings.spool_dir)  # the body is not read yet
        response.read()
    expected_id = derive_event_id("shop", "msg_1")
    assert response.json() == {"accepted": 1, "ids": [expected_id]}
    [event] = on_disk
    assert (event.id, event.type, event.source) == (expected_id, "user_request", "shop")
    assert event.data["user_id"] == "u1"
    assert event.occurred <= event.received


def test_a_list_delivery_is_accepted_whole(gateway: Callable[..., Any]) -> None:
    client, _, settings = gateway()
    response = post(client, [item("a"), item("b"), item("c")], msg_id="msg_list")
    assert response.status_code == 202
    ids = [derive_event_id("shop", "msg_list", i) for i in range(3)]
    assert response.json() == {"accepted": 3, "ids": ids}
    assert sorted(e.id for e in spooled_events(settings.spool_dir)) == sorted(ids)


def test_the_same_delivery_sent_again_gets_the_same_ids(gateway: Callable[..., Any]) -> None:
    client, _, settings = gateway()
    body = orjson.dumps(item())
    headers = signed(body, "msg_1")
    first = client.post("/hooks/shop", content=body, headers=headers)
    again = client.post("/hooks/shop", content=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json() == {"accepted": 1, "ids": [derive_event_id("shop", "msg_1")]}
    # Both copies are spooled; the store's key on the id makes the second a no-op downstream.
    assert {e.id for e in spooled_events(settings.spool_dir)} == {derive_event_id("shop", "msg_1")}


def test_health_reports_what_was_accepted(gateway: Callable[..., Any]) -> None:
    client, _, settings = gateway(batch=BatchPolicy(max_seconds=60))
    Spool(settings.spool_dir).touch_lease("user_request", "run-1")  # a run is awake: the batch grows by its policy
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["accepted"] == 0
    assert post(client, [item(), item()]).status_code == 202
    health = client.get("/health").json()
    assert health["accepted"] == 2
    assert health["open"] == {"user_request": 2}


# --- refusals ------------------------------------------------------------------------------------------


def test_a_bad_signature_is_401_and_nothing_is_spooled(gateway: Callable[..., Any]) -> None:
    client, _, settings = gateway()
    body = orjson.dumps(item())
    forged = {**sign(STANDARD, body, generate_secret(STANDARD), msg_id="msg_1"), "content-type": "application/json"}
    assert_error(client.post("/hooks/shop", content=body, headers=forged), 401, "invalid_signature")
    unsigned = {"content-type": "application/json"}
    assert_error(client.post("/hooks/shop", content=body, headers=unsigned), 401, "missing_signature")
    stale = signed(body, "msg_1", timestamp=time.time() - 600)
    assert_error(client.post("/hooks/shop", content=body, headers=stale), 401, "stale_timestamp")
    assert spooled_events(settings.spool_dir) == []
    assert client.get("/health").json()["accepted"] == 0


def big_body(size: int) -> bytes:
    """A valid delivery of exactly `size` bytes."""
    body = orjson.dumps(item(path=""))
    return orjson.dumps(item(path="x" * (size - len(body))))


def chunks(body: bytes, size: int = 256) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_a_body_over_the_limit_is_413_with_a_content_length(gateway: Callable[..., Any]) -> None:
    client, _, settings = gateway(max_body_bytes=1000)
    body = big_body(1001)
    response = client.post("/hooks/shop", content=body, headers=signed(body, "msg_1"))
    assert response.request.headers["content-length"] == "1001"
    assert_error(response, 413, "body_too_large")
    assert spooled_events(settings.spool_dir) == []


def test_a_chunked_body_over_the_limit_is_413(gateway: Callable[..., Any]) -> None:
    client, _, settings = gateway(max_body_bytes=1000)
    body = big_body(3000)
    response = client.post("/hooks/shop", content=chunks(body), headers=signed(body, "msg_1"))
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_error(response, 413, "body_too_large")
    assert spooled_events(settings.spool_dir) == []


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_exactly_at_the_limit_is_accepted(gateway: Callable[..., Any], chunked: bool) -> None:
    client, _, _ = gateway(max_body_bytes=1000)
    body = big_body(1000)
    assert len(body) == 1000
    content = chunks(body) if chunked else body
    assert client.post("/hooks/shop", content=content, headers=signed(body, "msg_1")).status_code == 202


def test_invalid_json_is_400(gateway: Callable[..., Any]) -> None:
    client, _, settings = gateway()
    assert_error(post(client, b'{"type": "user_request", '), 400, "invalid_json")
    assert spooled_events(settings.spool_dir) == []


def test_a_schema_violation_is_422_with_the_field_path(gateway: Callable[..., Any]) -> None:
    client, _, settings = gateway()
    payload = assert_error(
        post(client, [item(), {"type": "user_request", "data": {"action": "a"}}]), 422, "schema_violation"
    )
    assert payload["errors"] == [{"index": 1, "loc": ["data", "user_id"], "msg": "Field required"}]
    assert spooled_events(settings.spool_dir) == []


def test_an_unknown_event_type_is_422_with_the_known_types(gateway: Callable[..., Any]) -> None:
    client, _, _ = gateway()
    payload = assert_error(post(client, {"type": "order_paid", "data": {}}), 422, "unknown_event_type")
    assert {"user_request", "data_update", "scheduled_tick"} <= set(payload["errors"][0]["known"])


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/nowhere", 404, "not_found"),
        ("POST", "/hooks", 404, "not_found"),
        ("POST", "/hooks/Shop", 404, "unknown_source"),
        ("POST", "/hooks/-shop", 404, "unknown_source"),
        ("GET", "/hooks/shop", 405, "method_not_allowed"),
        ("DELETE", "/health", 405, "method_not_allowed"),
    ],
)
def test_unknown_paths_and_methods_are_json_errors(
    gateway: Callable[..., Any], method: str, path: str, status: int, code: str
) -> None:
    client, _, _ = gateway()
    body = orjson.dumps(item())
    response = client.request(method, path, content=body, headers=signed(body, "msg_1"))
    payload = assert_error(response, status, code)
    assert payload["message"][:1].isupper() and payload["message"].endswith("."), payload["message"]
    if status == 405:  # RFC 9110: a 405 lists the methods the resource takes
        assert response.headers["allow"] == ("POST" if path.startswith("/hooks") else "GET")


def test_a_fractional_timestamp_that_verifies_is_not_a_server_error(gateway: Callable[..., Any]) -> None:
    client, _, _ = gateway()
    body = orjson.dumps(item())
    now = time.time()
    # How a sender using the standardwebhooks library's own signer with a float clock signs.
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(now),
        "webhook-signature": Webhook(SECRET).sign("msg_1", datetime.fromtimestamp(now, UTC), body.decode()),
        "content-type": "application/json",
    }
    response = client.post("/hooks/shop", content=body, headers=headers)
    assert response.status_code == 202, response.text


# --- batching and forwarding -----------------------------------------------------------------------------


@pytest.mark.parametrize("setting", ["batch", "batch_overrides"])
def test_events_are_sealed_in_batches_of_at_most_max_events_and_forwarded(
    gateway: Callable[..., Any], setting: str
) -> None:
    policy = BatchPolicy(max_events=5, max_seconds=0.2, hold_seconds=0)  # nothing claims here
    overrides = {"batch": policy} if setting == "batch" else {"batch_overrides": {"user_request": policy}}
    # Runs that do not stay awake: every batch needs a wake-up of its own.
    client, sink, settings = gateway(drain=DrainPolicy(idle_seconds=0), **overrides)
    ids = []
    for n in range(12):
        response = post(client, item(f"u{n}"), msg_id=f"msg_{n}")
        assert response.status_code == 202
        ids += response.json()["ids"]

    wait_for(lambda: sum(ref.count for ref in sink.sent) == 12)
    counts = [ref.count for ref in sink.sent]
    assert sum(counts) == 12
    assert max(counts) <= 5
    assert {ref.event_type for ref in sink.sent} == {"user_request"}
    assert all(ref.emitted is not None for ref in sink.sent)

    spool = Spool(settings.spool_dir)
    wait_for(lambda: all(spool.state_of(ref.batch_id) is State.SENT for ref in sink.sent))
    for ref in sink.sent:
        assert len(spool.read(spool.path(State.SENT, ref.batch_id))) == ref.count
    assert sorted(e.id for e in spooled_events(settings.spool_dir, (State.SENT,))) == sorted(ids)
    assert spooled_events(settings.spool_dir, (State.OPEN, State.READY)) == []


def test_another_types_policy_is_not_overridden(gateway: Callable[..., Any]) -> None:
    client, sink, settings = gateway(
        batch=BatchPolicy(max_events=1000, max_seconds=60),
        batch_overrides={"data_update": BatchPolicy(max_events=2, max_seconds=60)},
    )
    spool = Spool(settings.spool_dir)
    for event_type in ("user_request", "data_update"):  # runs are awake: batches grow by their policies
        spool.touch_lease(event_type, "run-1")
    update = {"type": "data_update", "data": {"dataset": "d", "uri": "s3://b/k"}}
    assert post(client, [item(), item(), item(), update, update, update], msg_id="m").status_code == 202
    wait_for(lambda: len(spool.waiting("data_update")) == 1)
    time.sleep(0.2)
    # data_update's limit of 2 sealed one batch (left for the awake run) and opened the next; user_request's
    # 1000 is far off.
    [ref] = spool.pending("data_update", max_events=10)
    assert ref.count == 2
    assert sink.sent == []
    assert client.get("/health").json()["open"] == {"user_request": 3, "data_update": 1}


def test_a_batch_left_open_by_a_crash_is_sealed_and_forwarded_on_start(
    tmp_path: Path, gateway: Callable[..., Any]
) -> None:
    spool = Spool(tmp_path / "spool")
    batch_id = new_batch_id("user_request")
    event = Event(
        id="e1",
        type="user_request",
        source="shop",
        occurred=datetime(2024, 5, 1, tzinfo=UTC),
        received=datetime(2024, 5, 1, tzinfo=UTC),
        data={"user_id": "u1", "action": "search"},
    )
    torn = encode_event(event.model_copy(update={"id": "e2"}))[:-20]
    spool.path(State.OPEN, batch_id).write_bytes(encode_event(event) + torn)

    _, sink, _ = gateway()
    wait_for(lambda: len(sink.sent) == 1)
    [ref] = sink.sent
    assert (ref.batch_id, ref.event_type, ref.count) == (batch_id, "user_request", 1)
    wait_for(lambda: spool.state_of(batch_id) is State.SENT)
    assert spool.read(spool.path(State.SENT, batch_id)) == [event]


def test_stopping_the_gateway_seals_and_forwards_open_batches(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, webhook_secret=SECRET, sources={"shop": SourceConfig()}, batch=BatchPolicy(max_seconds=60)
    )
    sink = MemorySink()
    with serve(settings, sink) as client:
        assert post(client, [item(), item()]).status_code == 202
        assert sink.sent == []
    [ref] = sink.sent
    assert ref.count == 2
    assert Spool(settings.spool_dir).state_of(ref.batch_id) in (State.READY, State.SENT)


class SlowSink(MemorySink):
    """A sink that takes a while to answer, as a Prefect server under load does."""

    async def emit(self, refs: Sequence[BatchRef]) -> None:
        await asyncio.sleep(0.3)
        await super().emit(refs)


def test_stopping_the_gateway_waits_for_a_send_in_flight(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, webhook_secret=SECRET, sources={"shop": SourceConfig()}, batch=BatchPolicy(max_seconds=60)
    )
    sink = SlowSink()
    with serve(settings, sink) as client:
        assert post(client, [item(), item()]).status_code == 202
    assert [ref.count for ref in sink.sent] == [2]


def test_a_batch_sealed_while_a_wake_up_of_its_type_is_pending_wakes_no_second_run(
    gateway: Callable[..., Any],
) -> None:
    client, sink, settings = gateway(batch=BatchPolicy(max_events=1, max_seconds=0.1, hold_seconds=0))
    for n in range(3):
        assert post(client, item(f"u{n}"), msg_id=f"msg_{n}").status_code == 202
    spool = Spool(settings.spool_dir)
    wait_for(lambda: len(spool.waiting("user_request")) == 3)
    wait_for(lambda: client.get("/health").json()["wakeups_saved"] == 2)
    assert len(sink.sent) == 1  # the run it wakes takes all three

    for batch_id in spool.waiting("user_request"):  # that run claims them
        spool.claim(batch_id)
    assert post(client, item("u9"), msg_id="msg_9").status_code == 202
    wait_for(lambda: len(sink.sent) == 2)  # nothing pending, no lease: a new wake-up


def test_a_batch_that_wakes_a_run_is_sealed_as_soon_as_it_is_on_disk(gateway: Callable[..., Any]) -> None:
    client, sink, _ = gateway(batch=BatchPolicy(max_seconds=60))
    started = time.monotonic()
    assert post(client, [item("a"), item("b")], msg_id="msg_cold").status_code == 202
    wait_for(lambda: len(sink.sent) == 1)
    # No run awake, none being woken: the run's start is the wait, so the batch does not wait for 60 s first.
    assert time.monotonic() - started < 5.0
    assert sink.sent[0].count == 2
    assert client.get("/health").json()["open"] == {}

    # A wake-up is on its way now: the next events gather in a batch held open meanwhile.
    assert post(client, item("c"), msg_id="msg_next").status_code == 202
    assert client.get("/health").json()["open"] == {"user_request": 1}
    assert len(sink.sent) == 1


def test_a_wake_up_that_brought_no_run_holds_back_the_next_batch_only_so_long(gateway: Callable[..., Any]) -> None:
    client, sink, settings = gateway(
        batch=BatchPolicy(max_events=1, max_seconds=0.1), drain=DrainPolicy(wake_lost_seconds=1.5)
    )
    spool = Spool(settings.spool_dir)
    assert post(client, item("u1"), msg_id="msg_lost").status_code == 202
    wait_for(lambda: len(sink.sent) == 1)  # its run crashes before it claims the batch (Prefect answered 503)
    assert post(client, item("u2"), msg_id="msg_behind").status_code == 202
    wait_for(lambda: client.get("/health").json()["wakeups_saved"] == 1)  # trusted for 1.5 s: no second run
    assert len(sink.sent) == 1

    time.sleep(1.6)
    assert post(client, item("u3"), msg_id="msg_after").status_code == 202
    wait_for(lambda: len(sink.sent) == 2)  # no run came: this batch wakes one, which takes all three
    assert sink.sent[1].count == 1
    assert len(spool.waiting("user_request")) == 3


def test_a_batch_sealed_while_a_run_of_its_type_is_awake_is_left_for_that_run(gateway: Callable[..., Any]) -> None:
    client, sink, settings = gateway(batch=BatchPolicy(max_events=1000, max_seconds=0.1, hold_seconds=0))
    spool = Spool(settings.spool_dir)
    spool.touch_lease("user_request", "run-1")
    assert post(client, item("u1"), msg_id="msg_awake").status_code == 202
    wait_for(lambda: client.get("/health").json()["wakeups_saved"] == 1)
    assert sink.sent == []
    [batch] = spool.pending("user_request", max_events=10)
    assert spool.state_of(batch.batch_id) is State.READY

    spool.claim(batch.batch_id)  # the awake run takes it, then ends: the next batch wakes one
    spool.drop_lease("user_request", "run-1")
    assert post(client, item("u2"), msg_id="msg_asleep").status_code == 202
    wait_for(lambda: len(sink.sent) == 1)
    assert sink.sent[0].count == 1
