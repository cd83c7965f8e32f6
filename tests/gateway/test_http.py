"""The gateway's HTTP protocol (httptools with a bound on header sections) on a real uvicorn server, spoken to
over raw sockets: deliveries on keep-alive and pipelined connections, and header sections over the limit."""

from __future__ import annotations

import asyncio
import select
import socket
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import orjson
import pytest

from flowhook.events import derive_event_id
from flowhook.gateway.http import MAX_HEADER_BYTES, BoundedHttpToolsProtocol
from flowhook.gateway.schemes import generate_secret, sign
from flowhook.settings import Settings
from flowhook.sources.webhook import SignatureConfig, SourceConfig
from tests.servers import serve

STANDARD = SignatureConfig()
SECRET = generate_secret(STANDARD)
KB = 1000
MB = 1024 * 1024


@pytest.fixture
def port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    monkeypatch.delenv("FLOWHOOK_WEBHOOK_SECRET", raising=False)
    settings = Settings(data_dir=tmp_path, webhook_secret=SECRET, sources={"shop": SourceConfig()})
    with serve(settings) as client:
        assert client.base_url.port is not None
        yield client.base_url.port


def delivery(msg_id: str, *, padding: int = 0, body_bytes: int = 0) -> bytes:
    """A signed POST /hooks/shop: `padding` bytes of extra header fields, a body of at least `body_bytes`."""
    document = {"type": "user_request", "data": {"user_id": "u1", "action": "search", "path": "x" * body_bytes}}
    body = orjson.dumps(document)
    headers = {**sign(STANDARD, body, SECRET, msg_id=msg_id), "content-type": "application/json"}
    lines = [f"{name}: {value}\r\n".encode() for name, value in headers.items()]
    return (
        b"POST /hooks/shop HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + b"".join(lines)
        + padding_fields(padding)
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )


def padding_fields(size: int) -> bytes:
    """About `size` bytes (within 18) of extra header fields, in lines of 8 KB."""
    count = -(-size // 8000)
    return b"".join(b"X-Padding-%04d: " % n + b"a" * (min(8000, size - n * 8000) - 18) + b"\r\n" for n in range(count))


class Connection:
    """A client socket that reads HTTP/1.1 responses with a Content-Length, one after another."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def response(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status_line, *lines = head.decode().split("\r\n")
        headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)}
        length = int(headers["content-length"])
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(status_line.split()[1]), headers, body

    def closed(self) -> bool:
        """Whether the server hung up (after what is buffered), waiting up to the socket timeout for it to."""
        if self.buffer:
            return False
        try:
            return self.sock.recv(65536) == b""
        except ConnectionResetError:
            return True

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        assert data, f"the server closed the connection; unread: {self.buffer[:200]!r}"
        self.buffer += data


@contextmanager
def connection(port: int) -> Iterator[Connection]:
    conn = Connection(port)
    with conn.sock:
        yield conn


def assert_too_large(response: tuple[int, dict[str, str], bytes]) -> None:
    status, headers, body = response
    assert status == 431, body
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    payload: dict[str, Any] = orjson.loads(body)
    assert payload["code"] == "headers_too_large"
    assert payload["message"][:1].isupper()


# --- the normal path ------------------------------------------------------------------------------------------


def test_deliveries_on_one_keep_alive_connection_are_accepted(port: int) -> None:
    with connection(port) as conn:
        for n in range(5):
            conn.sock.sendall(delivery(f"msg_{n}"))
            status, headers, body = conn.response()
            assert status == 202, body
            assert headers.get("connection") != "close"


def test_pipelined_deliveries_are_answered_in_order(port: int) -> None:
    with connection(port) as conn:
        conn.sock.sendall(b"".join(delivery(f"msg_{n}", body_bytes=n * 50 * KB) for n in range(4)))
        for n in range(4):
            status, _, body = conn.response()
            assert status == 202, body
            assert orjson.loads(body)["ids"] == [derive_event_id("shop", f"msg_{n}")]


def test_each_answer_leaves_in_one_write_head_and_body_together(port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every response (accepted, refused, FastAPI's own routes) is one send on the socket, not a head and a body."""
    writes: list[bytes] = []

    class Recording:
        """The connection's transport, every write recorded."""

        def __init__(self, transport: asyncio.Transport) -> None:
            self.transport = transport

        def write(self, data: bytes) -> None:
            writes.append(bytes(data))
            self.transport.write(data)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.transport, name)

    connection_made = BoundedHttpToolsProtocol.connection_made
    monkeypatch.setattr(
        BoundedHttpToolsProtocol,
        "connection_made",
        lambda self, transport: connection_made(self, Recording(transport)),  # type: ignore[arg-type]
    )
    with connection(port) as conn:
        conn.sock.sendall(delivery("msg_one"))
        accepted = conn.response()
        conn.sock.sendall(
            b"POST /hooks/shop HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        )
        refused = conn.response()
        conn.sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        health = conn.response()
    assert [accepted[0], refused[0], health[0]] == [202, 401, 200]
    assert len(writes) == 3, writes
    for (_, _, body), data in zip([accepted, refused, health], writes, strict=True):
        assert data.startswith(b"HTTP/1.1 ") and data.endswith(b"\r\n\r\n" + body), data


def test_a_delivery_that_expects_100_continue_gets_it_before_it_sends_its_body(port: int) -> None:
    """The interim answer goes out at once (the sender waits for it); the final one after the body."""
    request = delivery("msg_continue")
    head, _, body = request.partition(b"\r\n\r\n")
    with connection(port) as conn:
        conn.sock.sendall(head + b"\r\nExpect: 100-continue\r\n\r\n")
        assert conn.sock.recv(65536).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        conn.sock.sendall(body)
        status, _, answer = conn.response()
    assert status == 202, answer


@pytest.mark.parametrize("split", [False, True], ids=["one-write", "head-split-across-reads"])
def test_a_large_body_does_not_count_as_header(port: int, split: bool) -> None:
    # The chunk that ends a head may carry a body far over the limit: only the head counts.
    request = delivery("msg_big", body_bytes=300 * KB)
    with connection(port) as conn:
        if split:
            conn.sock.sendall(request[:200])
            time.sleep(0.2)  # the server reads the start of the head on its own
        conn.sock.sendall(request[200 if split else 0 :])
        status, _, body = conn.response()
        assert status == 202, body


@pytest.mark.parametrize("trickle", [False, True], ids=["one-write", "in-4-KB-writes"])
def test_a_head_just_under_the_limit_is_accepted(port: int, trickle: bool) -> None:
    plain = delivery("msg_1")
    head_size = plain.index(b"\r\n\r\n") + 4
    request = delivery("msg_1", padding=MAX_HEADER_BYTES - head_size - 256)
    assert MAX_HEADER_BYTES - 512 < request.index(b"\r\n\r\n") + 4 <= MAX_HEADER_BYTES
    with connection(port) as conn:
        for start in range(0, len(request), 4096 if trickle else len(request)):
            conn.sock.sendall(request[start : start + (4096 if trickle else len(request))])
            if trickle:
                time.sleep(0.005)
        status, _, body = conn.response()
        assert status == 202, body
        conn.sock.sendall(delivery("msg_2"))  # and the connection stays usable
        assert conn.response()[0] == 202


# --- header sections over the limit ---------------------------------------------------------------------------


@pytest.mark.parametrize("trickle", [False, True], ids=["one-write", "in-16-KB-writes"])
def test_a_head_of_200_kib_is_431_and_the_connection_closed(port: int, trickle: bool) -> None:
    request = delivery("msg_1", padding=200 * 1024)
    step = 16 * 1024 if trickle else len(request)
    with connection(port) as conn:
        with suppress(BrokenPipeError, ConnectionResetError):  # the server may hang up before it all is sent
            for start in range(0, len(request), step):
                conn.sock.sendall(request[start : start + step])
                if trickle:
                    time.sleep(0.005)
        assert_too_large(conn.response())
        assert conn.closed()


def test_a_head_just_over_the_limit_is_431(port: int) -> None:
    request = delivery("msg_1", padding=MAX_HEADER_BYTES + 256)
    with connection(port) as conn:
        with suppress(BrokenPipeError, ConnectionResetError):
            conn.sock.sendall(request)
        assert_too_large(conn.response())
        assert conn.closed()


@pytest.mark.parametrize("padding", [MAX_HEADER_BYTES + 256, 200 * 1024], ids=["just-over", "200-KiB"])
def test_a_large_head_behind_a_pipelined_delivery_is_answered_after_it(port: int, padding: int) -> None:
    with connection(port) as conn:
        conn.sock.sendall(delivery("msg_1", body_bytes=100 * KB) + delivery("msg_2", padding=padding))
        status, _, body = conn.response()
        assert status == 202, body
        assert_too_large(conn.response())
        assert conn.closed()


def stream_headers(port: int, total: int) -> tuple[int, bytes]:
    """Send a head that never ends, up to `total` bytes, until the server answers or hangs up."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)  # what counts as sent is near what it read
    with sock:
        sock.connect(("127.0.0.1", port))
        sock.setblocking(False)
        line = b"X-Padding: " + b"a" * 8000 + b"\r\n"
        pending, sent, answer = b"POST /hooks/shop HTTP/1.1\r\nHost: 127.0.0.1\r\n", 0, b""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and sent < total:
            readable, writable, _ = select.select([sock], [sock], [], 1.0)
            if readable:
                break
            if writable:
                try:
                    n = sock.send(pending or line)
                except (BrokenPipeError, ConnectionResetError):
                    break
                pending, sent = (pending or line)[n:], sent + n
        sock.setblocking(True)
        sock.settimeout(5)
        with suppress(OSError):
            while data := sock.recv(65536):
                answer += data
    return sent, answer


def test_an_endless_head_is_cut_off_near_the_limit(port: int) -> None:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        sent, answer = stream_headers(port, 16 * MB)
        growth = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 "), (sent, answer[:200])
    assert b"connection: close" in head.lower()
    assert orjson.loads(body)["code"] == "headers_too_large"
    assert sent < 200 * KB, sent
    assert growth < 2 * MB, growth  # what the server kept of the head (the test's own buffers are small)
