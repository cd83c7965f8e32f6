"""uvicorn's httptools protocol, bounded against hostile and broken clients.

httptools puts no limit on a request's headers and uvicorn no time limit on a head or a body: a client
that never ends them keeps its connection, and what it sent, as long as it likes. `BoundedHttpToolsProtocol`
answers `431` once a header section passes `MAX_HEADER_BYTES`, `408` when a head or a body is not in
after its timeout, and gives a request that finds every connection taken the slot of the longest-idle
connection (one between requests, or still sending its head), or `503` if none is idle. When the event
loop runs more than its target late (`admission.LoopLag`), or `max_in_flight` requests are being processed
already, a delivery (`POST /hooks/...`) is answered `503 overloaded` with Retry-After as soon as its head is
in, before its body is read, verified or parsed: past capacity the excess is answered at once instead of
queueing in the event loop. Every answer it writes itself is JSON in the gateway's error shape (`refusals.error_body`).
`server_config` builds the uvicorn configuration every place that runs the gateway uses.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import uvicorn
from uvicorn._types import ASGIApplication, ASGIReceiveCallable, ASGISendCallable, Scope
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from flowhook.gateway.admission import LoopLag
from flowhook.gateway.corked import Corked
from flowhook.gateway.refusals import error_body
from flowhook.names import HOOKS_PATH
from flowhook.sampling.recorder import UNKNOWN
from flowhook.settings import Settings

__all__ = ["MAX_HEADER_BYTES", "BoundedHttpToolsProtocol", "server_config"]

MAX_HEADER_BYTES = 64 * 1024
"""The largest header section (request line and header fields) the gateway reads; common servers use 8–64 KiB."""

BODY_TIMED_OUT = "body_timed_out"
"""Set (True) in `request.state` when the protocol cut a request whose body did not arrive in time."""


def _json_error(code: str, message: str) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    body = error_body(code, message)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    return body, headers


_BODY, _HEADERS = _json_error("headers_too_large", f"The request's headers exceed {MAX_HEADER_BYTES} bytes.")
_BUSY_BODY, _BUSY_HEADERS = _json_error("too_many_connections", "The gateway is at its connection limit; try again.")
_BUSY_HEADERS = [*_BUSY_HEADERS, (b"retry-after", b"1")]
_OVERLOADED_BODY = error_body("overloaded", "The gateway is at capacity; nothing was stored, try again shortly.")
# Kept alive (no `connection: close`): a refusal costs the sender no new connection, and the gateway no accept.
_OVERLOADED_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(_OVERLOADED_BODY)).encode()),
    (b"retry-after", b"1"),
]
_HOOKS = HOOKS_PATH.encode()
_LAG_MIN_IN_FLIGHT = 8
"""A late loop with fewer requests in flight is one slow request (a first import, a large body), not overload."""


async def _headers_too_large(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    await send({"type": "http.response.start", "status": 431, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _BODY, "more_body": False})


async def _overloaded(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    await send({"type": "http.response.start", "status": 503, "headers": _OVERLOADED_HEADERS})
    await send({"type": "http.response.body", "body": _OVERLOADED_BODY, "more_body": False})


async def _too_many_connections(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    await send({"type": "http.response.start", "status": 503, "headers": _BUSY_HEADERS})
    await send({"type": "http.response.body", "body": _BUSY_BODY, "more_body": False})


def server_config(app: ASGIApplication, settings: Settings, **options: Any) -> uvicorn.Config:
    """uvicorn's configuration for the gateway: the bounded protocol with the settings' timeouts and cap."""
    limits = settings.ingress
    # The gateway app's recorder counts the answers the protocol gives itself too (before any route runs).
    gateway = getattr(getattr(app, "state", None), "gateway", None)
    protocol = type(
        "GatewayHttpProtocol",
        (BoundedHttpToolsProtocol,),
        {
            "header_timeout": limits.header_timeout_seconds,
            "body_timeout": limits.body_timeout_seconds,
            "max_in_flight": limits.max_in_flight,
            "lag": LoopLag(limits.max_loop_lag_seconds),  # one per server: its loop's
            "counter": staticmethod(gateway.recorder.count) if gateway is not None else None,
            "sources": frozenset(gateway.sources) if gateway is not None else frozenset(),
        },
    )
    return uvicorn.Config(
        app,
        **{
            "host": settings.gateway_host,
            "port": settings.gateway_port,
            "http": protocol,
            "limit_concurrency": limits.max_connections,
            "log_level": "warning",
            "access_log": False,
            **options,
        },
    )


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` with a bound on header size, time limits on head and body, and a connection cap."""

    max_header_bytes = MAX_HEADER_BYTES
    header_timeout = 10.0
    body_timeout = 30.0
    max_in_flight: int | None = None
    lag: LoopLag | None = None
    counter: Callable[[str, int, str], None] | None = None
    """Counts each answer the protocol gives itself, as (source, status, code); the source where the path names
    one of `sources`, else unknown."""
    sources: frozenset[str] = frozenset()

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.cap, self.limit_concurrency = self.limit_concurrency, None  # checked here, answered in JSON
        self._in_head = False  # from on_message_begin until on_headers_complete
        self._head_bytes = 0  # the head's bytes in chunks read whole while it was open: never more than it sent
        self._chunk = 0  # length of the chunk being parsed
        self._ended = False  # a message ended in the chunk being parsed, so where the next one began is unknown
        self._straddled = False  # the head began after such an end, in a chunk not counted in _head_bytes
        self._refusing = False  # a 431 waits for the pipelined responses before it
        self._timer: asyncio.TimerHandle | None = None  # the head's or the body's deadline
        self._dropping = False  # the request being parsed was refused as overload: its body is dropped
        self.idle_since: float | None = None  # when it began waiting for a head; None while a request runs

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.lag is not None:
            self.lag.watch(self.loop)
        self.idle_since = time.monotonic()
        self._make_room()  # if none is idle, it waits for its head like any other, then is answered 503
        self._arm(self.header_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._chunk, self._ended = len(data), False
        super().data_received(data)
        if not self._in_head:
            return
        # The head is still open after this chunk, so the chunk is head from where the message began to its
        # end: all of it, unless an earlier message ended in it (pipelining) and the head's start is unknown.
        if self._ended:
            self._straddled = True
        else:
            self._head_bytes += len(data)
        if self._head_bytes > self.max_header_bytes and not self.transport.is_closing():
            self._refuse()

    def on_message_begin(self) -> None:
        self._dropping = False
        super().on_message_begin()
        self._in_head, self._head_bytes, self._straddled = True, 0, False
        if self._timer is None:  # the first head's deadline runs from the connection, not its first byte
            self._arm(self.header_timeout, self._head_timed_out)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self.idle_since = None
        self._arm(self.body_timeout, self._body_timed_out)
        # Cheap bound first: a head that completed in this chunk is at most what was counted plus the chunk.
        if (self._straddled or self._head_bytes + self._chunk > self.max_header_bytes) and (
            self._head_size() > self.max_header_bytes
        ):
            # Answered through uvicorn's own cycle, so it waits its turn behind pipelined requests and the
            # body that may follow is parsed as usual; `connection: close` ends the connection after it.
            self._count(431, "headers_too_large")
            self._answer_with(_headers_too_large)
            return
        if self.cap is not None and (len(self.tasks) >= self.cap or not self._make_room()):
            self._count(503, "too_many_connections")
            self._answer_with(_too_many_connections)
            return
        if self._overloaded():
            self._count(503, "overloaded", self._source())
            self._refuse_overloaded()
            return
        super().on_headers_complete()
        self._cork()

    def on_body(self, body: bytes) -> None:
        if not self._dropping:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._ended = True
        self._disarm()
        if not self._dropping:
            super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.pipeline:
            self.idle_since = time.monotonic()
        if self._refusing and self.cycle.response_complete and not self.transport.is_closing():
            self._refuse()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to bytes that are not HTTP, in the gateway's JSON shape."""
        self._count(400, "invalid_http")
        self._write_error(400, *_json_error("invalid_http", "The request is not valid HTTP/1.1."))

    def _answer_with(self, app: Any) -> None:
        app, self.app = self.app, app
        try:
            super().on_headers_complete()
        finally:
            self.app = app
        self._cork()

    def _cork(self) -> None:
        """The new request's response goes out in one write (`Corked`); its task has not run yet."""
        cycle = self.cycle
        if cycle is not None and not isinstance(cycle.transport, Corked):
            cycle.transport = Corked(cycle.transport, cycle)  # type: ignore[assignment]

    def _overloaded(self) -> bool:
        """Whether this request is a delivery that finds the loop running late, or `max_in_flight` requests
        already being processed (`tasks` is the server's: every connection's running request)."""
        in_flight = len(self.tasks)
        busy = (self.lag is not None and in_flight >= _LAG_MIN_IN_FLIGHT and self.lag.late()) or (
            self.max_in_flight is not None and in_flight >= self.max_in_flight
        )
        return busy and self.url.startswith(_HOOKS) and self.parser.get_method() == b"POST"

    def _refuse_overloaded(self) -> None:
        """Answer 503 `overloaded` and keep the connection. Written here, with no ASGI cycle or task, so that a
        refusal costs a fraction of an acceptance; when a response is still owed on this connection (pipelining)
        it waits its turn through uvicorn's cycle instead."""
        if self.cycle is not None and not self.cycle.response_complete:
            self._answer_with(_overloaded)
            return
        self._dropping = True  # the body that follows is parsed and dropped; the next request starts afresh
        head = [STATUS_LINE[503]]
        head += [
            name + b": " + value + b"\r\n" for name, value in [*self.server_state.default_headers, *_OVERLOADED_HEADERS]
        ]
        self.transport.write(b"".join([*head, b"\r\n", _OVERLOADED_BODY]))
        if not self.parser.should_keep_alive():
            self.transport.close()
        self.on_response_complete()

    def _source(self) -> str:
        """The source a delivery's path names, if it is one of `sources` (a path is the sender's to choose)."""
        name = self.url[len(_HOOKS) :].split(b"?", 1)[0].decode("latin-1")
        return name if name in self.sources else UNKNOWN

    def _make_room(self) -> bool:
        """Whether there is a connection slot for this one: if all `cap` are taken, the longest-idle other
        connection (between requests, or still sending its head) is closed to make one; False if none is idle."""
        if self.cap is None or len(self.connections) <= self.cap:
            return True
        others = [
            conn
            for conn in self.connections
            if conn is not self and isinstance(conn, BoundedHttpToolsProtocol) and not conn.transport.is_closing()
        ]
        if len(others) < self.cap:  # some are closed already and only wait for connection_lost
            return True
        idle = [conn for conn in others if conn.idle_since is not None]
        if not idle:
            return False
        oldest = min(idle, key=lambda conn: conn.idle_since or 0.0)
        oldest.idle_since = None
        oldest.transport.close()
        return True

    def _arm(self, seconds: float, handler: Any) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, handler)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _head_timed_out(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if self.flow.read_paused:  # the server stopped reading (pipelining), not the client sending
            self._arm(self.header_timeout, self._head_timed_out)
        elif self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False  # a response is still being written: close after it
            self.flow.pause_reading()
        elif self._in_head or self.idle_since is not None:
            if self._in_head:  # a request had begun (an idle keep-alive connection is just closed, not counted)
                self._count(408, "request_timeout")
            message = f"The request's headers did not arrive within {self.header_timeout:g} seconds."
            self._write_error(408, *_json_error("request_timeout", message))

    def _body_timed_out(self) -> None:
        self._timer = None
        cycle = self.cycle
        if self.transport.is_closing() or cycle is None:
            return
        if self.flow.read_paused:  # the app has not read what came, or a pipelined request waits its turn
            self._arm(self.body_timeout, self._body_timed_out)
            return
        if cycle.response_started:
            self.transport.close()
            return
        # The app waits for the rest of the body: it reads a disconnect and its answers go nowhere.
        cycle.scope["state"][BODY_TIMED_OUT] = True
        cycle.disconnected = True
        cycle.message_event.set()
        message = f"The request's body did not arrive within {self.body_timeout:g} seconds."
        self._write_error(408, *_json_error("request_timeout", message))

    def _refuse(self) -> None:
        """Answer 431 and close, for a head over the limit that is not complete: after the responses still owed."""
        self.flow.pause_reading()
        if self.cycle is not None and not self.cycle.response_complete:
            self._refusing = True  # pipelined: on_response_complete comes back here once the last one is sent
            return
        self._count(431, "headers_too_large")
        self._write_error(431, _BODY, _HEADERS)

    def _count(self, status: int, code: str, source: str = UNKNOWN) -> None:
        if self.counter is not None:
            self.counter(source, status, code)

    def _write_error(self, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        head = [STATUS_LINE[status]]
        head += [name + b": " + value + b"\r\n" for name, value in [*self.server_state.default_headers, *headers]]
        self.transport.write(b"".join([*head, b"\r\n", body]))
        self.transport.close()

    def _head_size(self) -> int:
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
