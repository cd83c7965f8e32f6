"""Slow, stalled, vanishing and too many clients, against the gateway as `flowhook gateway` runs it, over raw
sockets: heads and bodies that do not arrive in time are cut (408), a body cut off is one log line, the
connection cap gives idle connections' slots to real requests or answers 503 at once."""

from __future__ import annotations

import logging
import select
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

import orjson
import pytest

from flowhook.events import derive_event_id
from flowhook.gateway.config import IngressLimits
from flowhook.settings import Settings
from flowhook.sources.webhook import SourceConfig
from flowhook.spool import Spool, State
from tests.figures import report
from tests.gateway.test_http import SECRET, Connection, delivery
from tests.servers import serve

TIMEOUT = 1.0  # the tests' header and body timeouts: short, so that each test takes seconds

EARLY = 0.01  # asyncio runs a timer up to its clock resolution early, and the server's clock starts first
Start = Callable[..., tuple[int, Settings]]


@pytest.fixture
def gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Start]:
    """Start a gateway (source `shop`, timeouts of TIMEOUT, `ingress` overrides); its port and settings."""
    monkeypatch.delenv("FLOWHOOK_WEBHOOK_SECRET", raising=False)
    with ExitStack() as running:

        def start(**ingress: Any) -> tuple[int, Settings]:
            limits = IngressLimits(**{"header_timeout_seconds": TIMEOUT, "body_timeout_seconds": TIMEOUT, **ingress})
            settings = Settings(
                data_dir=tmp_path, webhook_secret=SECRET, sources={"shop": SourceConfig()}, ingress=limits
            )
            client = running.enter_context(serve(settings))
            assert client.base_url.port is not None
            return client.base_url.port, settings

        yield start


@contextmanager
def log_records(*names: str) -> Iterator[list[logging.LogRecord]]:
    """Records of WARNING and above logged to the named loggers (uvicorn's do not reach the root logger)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    loggers = [logging.getLogger(name) for name in names]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield records
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def spooled(settings: Settings) -> list[str]:
    spool = Spool(settings.spool_dir)
    return [
        e.id
        for state in (State.OPEN, State.READY, State.SENT)
        for p in (spool.root / state).rglob("*.jsonl")
        for e in spool.read(p)
    ]


def held_until_cut(sock: socket.socket, started: float) -> tuple[float, bytes]:
    """Seconds from `started` until the server hung up, and what it sent before."""
    sock.settimeout(TIMEOUT * 10)
    answer = b""
    with suppress(ConnectionResetError):
        while data := sock.recv(65536):
            answer += data
    return time.monotonic() - started, answer


def assert_json_error(answer: bytes, status: int, code: str) -> dict[str, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status), answer[:300]
    headers = dict(line.split(": ", 1) for line in head.decode().lower().split("\r\n")[1:])
    assert headers["content-type"] == "application/json"
    payload = orjson.loads(body)
    assert payload["code"] == code
    assert payload["message"][:1].isupper()
    return headers


# --- heads and bodies that do not arrive ------------------------------------------------------------------


@pytest.mark.parametrize("sent", ["nothing", "half a head", "a head byte by byte"])
def test_a_head_not_in_after_the_timeout_is_408_and_cut(gateway: Start, sent: str) -> None:
    port, settings = gateway()
    request = delivery("msg_1")
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        if sent == "half a head":
            sock.sendall(request[: request.index(b"\r\n\r\n") // 2])
        elif sent == "a head byte by byte":  # each byte well within the timeout: the deadline is the head's
            for byte in request[: int(TIMEOUT * 10) + 5]:
                if select.select([sock], [], [], 0.1)[0]:  # the server answered
                    break
                sock.sendall(bytes([byte]))
        held, answer = held_until_cut(sock, started)
    assert_json_error(answer, 408, "request_timeout")
    assert TIMEOUT - EARLY <= held < TIMEOUT + 1.0, held
    if sent == "half a head":
        report(f"gateway: a half-sent header is held {held:.1f} s before the connection is cut (timeout {TIMEOUT:g} s)")
    assert spooled(settings) == []


def test_a_stalled_body_is_408_one_log_line_with_the_delivery_id_and_nothing_stored(gateway: Start) -> None:
    port, settings = gateway()
    request = delivery("msg_stalled")
    with log_records("uvicorn", "flowhook") as records, socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request[:-10])  # the head and all the body but its last 10 bytes
        started = time.monotonic()
        held, answer = held_until_cut(sock, started)
        wait_for(lambda: bool(records))  # the app's log line follows the 408
        time.sleep(0.2)  # a second line would be logged by now
    assert_json_error(answer, 408, "request_timeout")
    assert TIMEOUT - EARLY <= held < TIMEOUT + 1.0, held
    report(f"gateway: a stalled body is held {held:.1f} s before the connection is cut (timeout {TIMEOUT:g} s)")
    [record] = records
    assert "msg_stalled" in record.getMessage() and "did not arrive in time" in record.getMessage()
    assert record.exc_info is None
    assert spooled(settings) == []


def test_a_client_gone_mid_body_is_one_log_line_with_the_delivery_id_and_nothing_stored(gateway: Start) -> None:
    port, settings = gateway()
    with log_records("uvicorn", "flowhook") as records:
        for n in range(3):
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(delivery(f"msg_gone_{n}", body_bytes=2000)[:-1000])
                time.sleep(0.1)  # the app is reading the body
        wait_for(lambda: len(records) >= 3)
        time.sleep(0.2)  # any line more would be logged by now
    assert [r.getMessage().split()[1] for r in records] == [f"msg_gone_{n}" for n in range(3)]
    assert all("was cut off" in r.getMessage() and r.exc_info is None for r in records)
    assert spooled(settings) == []


def test_a_body_paused_by_the_server_is_not_cut_and_keep_alive_still_works(gateway: Start) -> None:
    port, settings = gateway()
    conn = Connection(port)
    with conn.sock:
        request = delivery("msg_slow")
        cut = request.index(b"\r\n\r\n") + 4
        conn.sock.sendall(request[:cut])
        time.sleep(TIMEOUT * 0.6)  # within the body timeout
        conn.sock.sendall(request[cut:])
        assert conn.response()[0] == 202
        time.sleep(TIMEOUT * 0.6)  # between requests: uvicorn's keep-alive (5 s) applies, not the head's
        conn.sock.sendall(delivery("msg_next"))
        assert conn.response()[0] == 202
    assert sorted(spooled(settings)) == sorted(derive_event_id("shop", m) for m in ("msg_slow", "msg_next"))


# --- the connection cap ----------------------------------------------------------------------------------


def test_idle_connections_over_the_cap_give_way_to_a_real_sender(gateway: Start) -> None:
    cap = 20
    port, settings = gateway(max_connections=cap, header_timeout_seconds=30.0)
    with ExitStack() as idle:
        flood = [idle.enter_context(socket.create_connection(("127.0.0.1", port))) for _ in range(2 * cap)]
        for sock in flood[-cap // 2 :]:
            sock.sendall(b"POST /hooks/shop HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # half a head, then nothing
        time.sleep(0.2)
        conn = Connection(port)
        with conn.sock:
            started = time.monotonic()
            conn.sock.sendall(delivery("msg_real"))
            status, _, body = conn.response()
            took = time.monotonic() - started
        assert status == 202, body
        assert took < 2.0, took
        still_open = 0
        for sock in flood:
            sock.setblocking(False)
            try:
                closed = sock.recv(1) == b""
            except BlockingIOError:
                closed = False
            except ConnectionResetError:
                closed = True
            still_open += not closed
        assert still_open <= cap, still_open
    assert spooled(settings) == [derive_event_id("shop", "msg_real")]


def test_with_every_connection_busy_a_new_request_is_503_at_once(gateway: Start) -> None:
    cap = 5
    port, settings = gateway(max_connections=cap, body_timeout_seconds=30.0)
    with ExitStack() as busy:
        for n in range(cap):  # heads in, bodies stalled: requests running, none idle
            sock = busy.enter_context(socket.create_connection(("127.0.0.1", port)))
            sock.sendall(delivery(f"msg_busy_{n}")[:-10])
        time.sleep(0.3)
        conn = Connection(port)
        with conn.sock:
            started = time.monotonic()
            conn.sock.sendall(delivery("msg_late"))
            status, headers, body = conn.response()
            took = time.monotonic() - started
        assert status == 503, body
        assert orjson.loads(body)["code"] == "too_many_connections"
        assert int(headers["retry-after"]) >= 1
        assert took < 1.0, took
        report(
            f"gateway: at the connection cap ({cap}, all busy) a new request is answered 503 in {took * 1000:.0f} ms"
        )
    assert spooled(settings) == []


# --- what the server answers before the app -----------------------------------------------------------------


@pytest.mark.parametrize(
    "request_bytes", [b"GARBAGE\r\n\r\n", b"GET /health HTTP/9.Z\r\n\r\n", b"\x16\x03\x01\x00\xa5"]
)
def test_bytes_that_are_not_http_are_a_json_400(gateway: Start, request_bytes: bytes) -> None:
    port, _ = gateway()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request_bytes)
        _, answer = held_until_cut(sock, time.monotonic())
    assert_json_error(answer, 400, "invalid_http")
