"""Keep-alive HTTP/1.1 connections to one address, shared by threads: each request takes an idle connection (or
opens one) and gives it back once the answer is read.

The smallest client that speaks to the gateway: a request is written in one `sendall`, and the answer read by its
Content-Length (or chunks, or to the end of the stream). It costs 0.08 ms of CPU a request where `http.client`
costs 0.29 and httpx 0.92 (2-core machine, one thread, a bare server), and one write instead of http.client's two
spares the server a read. With 8 threads under one GIL the sender then has room for thousands of deliveries a
second: the gateway, not the sender, sets the rate (`bench/emit_rate.py`)."""

from __future__ import annotations

import io
import select
import socket
import threading
import time
from collections.abc import Mapping

__all__ = ["IDLE_SECONDS", "ConnectionFailed", "Connections"]

IDLE_SECONDS = 4.0
"""An idle connection is dropped after this long, before the gateway's 5 s keep-alive (uvicorn's) ends it."""

_MAX_LINE = 65_536  # of a status or header line in an answer
_MAX_LINES = 100  # header (or trailer) lines in an answer


class ConnectionFailed(OSError):
    """No (well-formed) answer: the address refused, the connection broke, or the answer did not come in time."""

    def __init__(self, message: str, *, stale: bool) -> None:
        super().__init__(message)
        self.stale = stale  # a kept-alive connection broke (not timed out): the server closed it as it was taken


class _Connection:
    """One connection, used by one thread at a time."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb")
        self.idle_since = 0.0

    def is_open(self) -> bool:
        """Whether the idle connection is still open: nothing to read (an end of stream, or stray bytes, is not)."""
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        return not poller.poll(0)

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


class Connections:
    """Keep-alive connections to `host:port`, at most `keep` of them idle; one per thread sending at once."""

    def __init__(self, host: str, port: int, *, timeout: float = 30.0, keep: int = 100) -> None:
        self.host, self.port = host, port
        self._timeout = timeout
        self._keep = keep
        self._idle: list[_Connection] = []  # the most recently used last
        self._lock = threading.Lock()

    def post(self, path: str, body: bytes, headers: Mapping[str, str], *, fresh: bool = False) -> tuple[int, bytes]:
        """POST `body` to `path` (on a new connection if `fresh`); the answer's status and body."""
        connection = None if fresh else self._take()
        reused = connection is not None
        lines = [f"POST {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        request = "\r\n".join([*lines, "", ""]).encode("latin-1") + body
        try:
            connection = connection or _Connection(self.host, self.port, self._timeout)
            connection.sock.sendall(request)
            status, content, keep_alive = _read_answer(connection.reader)
        except (OSError, ValueError) as exc:
            if connection is not None:
                connection.close()
            stale = reused and not isinstance(exc, TimeoutError | ValueError)
            raise ConnectionFailed(f"{type(exc).__name__}: {exc}", stale=stale) from exc
        if keep_alive:
            self._give(connection)
        else:
            connection.close()
        return status, content

    def close(self) -> None:
        """Close the idle connections; those in use are closed when their thread gives them back."""
        with self._lock:
            idle, self._idle, self._keep = self._idle, [], 0
        for connection in idle:
            connection.close()

    def _take(self) -> _Connection | None:
        now = time.monotonic()
        while True:
            with self._lock:
                if not self._idle:
                    return None
                connection = self._idle.pop()
            if now - connection.idle_since < IDLE_SECONDS and connection.is_open():
                return connection
            connection.close()

    def _give(self, connection: _Connection) -> None:
        connection.idle_since = time.monotonic()
        with self._lock:
            if len(self._idle) < self._keep:
                self._idle.append(connection)
                return
        connection.close()


def _line(reader: io.BufferedReader) -> bytes:
    line = reader.readline(_MAX_LINE + 1)
    if not line.endswith(b"\n"):
        if len(line) > _MAX_LINE:
            raise ValueError("a line of the answer is too long")
        raise ConnectionError("the server closed the connection before its answer ended")
    return line


def _read_answer(reader: io.BufferedReader) -> tuple[int, bytes, bool]:
    """An HTTP/1.1 answer: its status, its body, and whether the connection may be used again."""
    version, _, rest = _line(reader).partition(b" ")
    if not version.startswith(b"HTTP/1."):
        raise ValueError("the answer is not HTTP/1.x")
    status = int(rest[:3])
    length, chunked, close = None, False, version == b"HTTP/1.0"
    for _ in range(_MAX_LINES):
        line = _line(reader)
        if line in (b"\r\n", b"\n"):
            break
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = value.endswith(b"chunked")
        elif name == b"connection":
            close = b"close" in value
    else:
        raise ValueError("the answer has too many header lines")
    if status < 200 or status in (204, 304):
        return status, b"", status >= 200 and not close  # no body (a 1xx answers nothing this client sends)
    if chunked:
        return status, _read_chunks(reader), not close
    if length is None:
        return status, reader.read(), False  # the body ends with the connection
    content = reader.read(length)
    if len(content) != length:
        raise ConnectionError("the server closed the connection before its answer ended")
    return status, content, not close


def _read_chunks(reader: io.BufferedReader) -> bytes:
    parts = []
    while size := int(_line(reader).split(b";", 1)[0], 16):
        part = reader.read(size + 2)  # the chunk and its CRLF
        if len(part) != size + 2:
            raise ConnectionError("the server closed the connection before its answer ended")
        parts.append(part[:-2])
    for _ in range(_MAX_LINES):  # trailers, up to the blank line
        if _line(reader) in (b"\r\n", b"\n"):
            return b"".join(parts)
    raise ValueError("the answer has too many trailer lines")
