"""A response's head and body leave in one write.

uvicorn writes a response's status line and headers when the app sends `http.response.start`, and its body
with `http.response.body`: two sends on the socket for every answer, where one would do. Each send is a
syscall and, on loopback, the receiving side's TCP work too; the gateway's answers are small, so the second
send cost a delivery more than its bytes. `Corked` stands in for the connection's transport in one request's
cycle and holds the head until the body's first write.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol


class _Cycle(Protocol):
    response_started: bool


class Corked:
    """`transport` for `cycle`: its first write once the response has started (the head) waits for the next.

    Writes before that (an interim `100 Continue`) go out at once; `close` sends a held head first.
    """

    __slots__ = ("_cycle", "_head", "_held", "_transport")

    def __init__(self, transport: asyncio.Transport, cycle: _Cycle) -> None:
        self._transport = transport
        self._cycle = cycle
        self._head: bytes | None = None
        self._held = False

    def write(self, data: bytes) -> None:
        if self._head is not None:
            data, self._head = self._head + data, None
        elif not self._held and self._cycle.response_started:
            self._head, self._held = bytes(data), True
            return
        self._transport.write(data)

    def close(self) -> None:
        if self._head is not None:
            self._transport.write(self._head)
            self._head = None
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
