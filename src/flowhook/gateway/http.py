"""uvicorn's httptools protocol with a bound on each request's header section.

httptools puts no limit on a request's headers: a client that never ends them makes the server read and
keep all it sends. `BoundedHttpToolsProtocol` answers `431 Request Header Fields Too Large` (JSON, like
the gateway's other errors) and hangs up once a header section passes `MAX_HEADER_BYTES`. Pass the
class as `uvicorn.run(..., http=BoundedHttpToolsProtocol)`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from uvicorn._types import ASGIReceiveCallable, ASGISendCallable, Scope
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

__all__ = ["MAX_HEADER_BYTES", "BoundedHttpToolsProtocol"]

MAX_HEADER_BYTES = 64 * 1024
"""The largest header section (request line and header fields) the gateway reads; common servers use 8–64 KiB."""

_BODY = orjson.dumps(
    {"code": "headers_too_large", "message": f"The request's headers exceed {MAX_HEADER_BYTES} bytes."}
)
_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(_BODY)).encode()),
    (b"connection", b"close"),
]


async def _headers_too_large(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    await send({"type": "http.response.start", "status": 431, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _BODY, "more_body": False})


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` that refuses a request whose header section passes `max_header_bytes` with a 431."""

    max_header_bytes = MAX_HEADER_BYTES

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._in_head = False  # from on_message_begin until on_headers_complete
        self._head_bytes = 0  # the head's bytes in chunks read whole while it was open: never more than it sent
        self._chunk = 0  # length of the chunk being parsed
        self._ended = False  # a message ended in the chunk being parsed, so where the next one began is unknown
        self._straddled = False  # the head began after such an end, in a chunk not counted in _head_bytes
        self._refusing = False  # a 431 waits for the pipelined responses before it

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
        super().on_message_begin()
        self._in_head, self._head_bytes, self._straddled = True, 0, False

    def on_headers_complete(self) -> None:
        self._in_head = False
        # Cheap bound first: a head that completed in this chunk is at most what was counted plus the chunk.
        if (self._straddled or self._head_bytes + self._chunk > self.max_header_bytes) and (
            self._head_size() > self.max_header_bytes
        ):
            # Answered through uvicorn's own cycle, so it waits its turn behind pipelined requests and the
            # body that may follow is parsed as usual; `connection: close` ends the connection after it.
            app, self.app = self.app, _headers_too_large
            try:
                super().on_headers_complete()
            finally:
                self.app = app
            return
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._ended = True
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._refusing and self.cycle.response_complete and not self.transport.is_closing():
            self._refuse()

    def _refuse(self) -> None:
        """Answer 431 and close, for a head over the limit that is not complete: after the responses still owed."""
        self.flow.pause_reading()
        if self.cycle is not None and not self.cycle.response_complete:
            self._refusing = True  # pipelined: on_response_complete comes back here once the last one is sent
            return
        head = [STATUS_LINE[431]]
        head += [name + b": " + value + b"\r\n" for name, value in [*self.server_state.default_headers, *_HEADERS]]
        self.transport.write(b"".join([*head, b"\r\n", _BODY]))
        self.transport.close()

    def _head_size(self) -> int:
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
