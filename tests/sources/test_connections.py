"""The keep-alive connections against a scripted server on a real socket: answers read by length, by chunks and
to the end of the stream; a kept-alive connection the server dropped is sent on again, a new one is not."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import pytest

from flowhook.sources.connections import ConnectionFailed, Connections
from flowhook.sources.sink import DeliveryFailed, GatewaySink
from flowhook.sources.webhook import SourceConfig

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
DROP = b""  # in a script: close the connection without an answer
CHUNKED = b'HTTP/1.1 202 X\r\ntransfer-encoding: chunked\r\n\r\n4;x=y\r\n{"id\r\n5\r\ns":[]\r\n1\r\n}\r\n0\r\n\r\n'


def answer(status: int, body: bytes, *headers: str) -> bytes:
    head = "".join(f"{header}\r\n" for header in (f"content-length: {len(body)}", *headers))
    return f"HTTP/1.1 {status} X\r\n{head}\r\n".encode() + body


@contextmanager
def scripted(*answers: bytes) -> Iterator[tuple[int, list[list[bytes]], threading.Semaphore]]:
    """A server on 127.0.0.1 that reads each request whole and writes the next of `answers` (DROP: closes the
    connection instead; one with a `close` header, `connection: close` or `x-then: close`, closes it after); yields
    its port, per connection it accepted the bodies of the requests it read, and a count of connections it closed."""
    listener = socket.create_server(("127.0.0.1", 0))
    script, connections, closed = list(answers), [], threading.Semaphore(0)

    def serve(conn: socket.socket, bodies: list[bytes]) -> None:
        try:
            with conn, suppress(OSError), conn.makefile("rb") as reader:
                while head := reader.readline():
                    length = 0
                    while (line := reader.readline()) not in (b"\r\n", b""):
                        name, _, value = line.partition(b":")
                        length = int(value) if name.lower() == b"content-length" else length
                    bodies.append(reader.read(length) if head.startswith(b"POST") else b"")
                    reply = script.pop(0)
                    if reply == DROP:
                        return
                    conn.sendall(reply)
                    if b": close\r\n" in reply:
                        return
        finally:
            closed.release()

    def accept() -> None:
        with suppress(OSError):
            while True:
                conn, _ = listener.accept()
                connections.append(bodies := [])
                threading.Thread(target=serve, args=(conn, bodies), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1], connections, closed
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes the accept
        listener.close()


@pytest.mark.parametrize(
    ("reply", "body"),
    [
        (answer(202, b'{"ids":["a"]}'), b'{"ids":["a"]}'),
        (CHUNKED, b'{"ids":[]}'),
        (answer(200, b""), b""),
    ],
    ids=["length", "chunks", "empty"],
)
def test_an_answer_is_read_whole_and_the_connection_kept(reply: bytes, body: bytes) -> None:
    with scripted(reply, reply) as (port, connections, _):
        pool = Connections("127.0.0.1", port)
        assert pool.post("/hooks/x", b"one", {"x-test": "1"})[1] == body
        assert pool.post("/hooks/x", b"two", {"x-test": "2"})[1] == body
        pool.close()
    assert connections == [[b"one", b"two"]]


def test_an_idle_connection_the_server_closed_is_not_used_again() -> None:
    with scripted(answer(202, b"1", "x-then: close"), answer(202, b"2")) as (port, connections, closed):
        pool = Connections("127.0.0.1", port)
        assert pool.post("/", b"one", {}) == (202, b"1")
        assert closed.acquire(timeout=10)  # as uvicorn ends an idle keep-alive connection
        assert pool.post("/", b"two", {}) == (202, b"2")  # no error: a new connection
        pool.close()
    assert connections == [[b"one"], [b"two"]]


def test_an_answer_to_the_end_of_the_stream_closes_the_connection() -> None:
    unbounded = b"HTTP/1.1 503 X\r\nconnection: close\r\n\r\nbusy"
    with scripted(unbounded, answer(202, b"{}")) as (port, connections, _):
        pool = Connections("127.0.0.1", port)
        assert pool.post("/", b"one", {}) == (503, b"busy")
        assert pool.post("/", b"two", {}) == (202, b"{}")
        pool.close()
    assert connections == [[b"one"], [b"two"]]


def test_a_kept_connection_dropped_without_an_answer_is_sent_on_again_a_new_one_is_not() -> None:
    script = (answer(202, b'{"ids":["a"]}'), DROP, answer(202, b'{"ids":["b"]}'), DROP)
    with scripted(*script) as (port, connections, _):
        pool = Connections("127.0.0.1", port)
        sink = GatewaySink(f"http://127.0.0.1:{port}", "emit", SourceConfig(), SECRET, connections=pool)
        assert sink.deliver([{"type": "t", "data": {}}]) == ["a"]
        assert sink.deliver([{"type": "t", "data": {"n": 2}}]) == ["b"]  # sent again, on a new connection
        assert [len(bodies) for bodies in connections] == [2, 1]
        assert connections[0][1] == connections[1][0]
        with pytest.raises(DeliveryFailed, match="unreachable") as failed:
            pool.close()  # nothing kept: the next delivery opens a new connection, which the server drops
            sink.deliver([{"type": "t", "data": {}}])
        assert failed.value.retryable
        assert [len(bodies) for bodies in connections] == [2, 1, 1]


def test_a_port_nobody_listens_on_fails_at_once() -> None:
    with scripted() as (port, _, _):
        pass
    with pytest.raises(ConnectionFailed) as failed:
        Connections("127.0.0.1", port).post("/", b"", {})
    assert not failed.value.stale
