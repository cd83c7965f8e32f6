"""Where every non-HTTP source delivers: the gateway's own inbox, over HTTP, signed like any
sender. One inbox means one set of guarantees: validated, fsync'd, batched, announced."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import orjson

from flowhook.gateway.schemes import sign_with_key, signing_key
from flowhook.gateway.sources import SourceConfig
from flowhook.names import HOOKS_PATH
from flowhook.sources.connections import ConnectionFailed, Connections

BUSY_SECONDS = 10.0
"""How long a delivery is sent again while the gateway answers `503 overloaded` (its head refused before the body
was read: nothing stored, so sending the same delivery again is safe), before the 503 is the caller's."""
_OVERLOADED = "overloaded"


class DeliveryFailed(RuntimeError):
    """The inbox did not accept the events; `status` is the HTTP status (None: unreachable)."""

    def __init__(self, message: str, *, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body

    @property
    def retryable(self) -> bool:
        """Whether the same delivery may succeed later (the gateway was down, busy or full)."""
        return self.status is None or self.status in (429, 503) or self.status >= 500


class EventSink(Protocol):
    """Accepts event items ({type, data, timestamp?, id?}) durably, or raises DeliveryFailed."""

    def deliver(self, items: Sequence[Mapping[str, Any]], *, delivery_id: str | None = None) -> list[str]: ...


class GatewaySink:
    """Delivers to `POST <gateway>/hooks/<source>`, signed with the source's scheme and secret; the HMAC key is
    derived once. Safe to share between threads. Sends through `connections` when given (their owner closes
    them), else through keep-alive connections of its own."""

    def __init__(
        self,
        base_url: str,
        source: str,
        config: SourceConfig,
        secret: str,
        *,
        connections: Connections | None = None,
        timeout: float = 30.0,
        busy_seconds: float = BUSY_SECONDS,
    ) -> None:
        url = urlsplit(base_url)
        if url.scheme != "http" or url.hostname is None:
            raise ValueError(f"the gateway's URL must be http://host[:port], not {base_url!r}")
        self._url = f"{base_url.rstrip('/')}{HOOKS_PATH}{source}"
        self._path = f"{url.path.rstrip('/')}{HOOKS_PATH}{quote(source)}"
        self._signature = config.signature
        self._key = signing_key(config.signature, secret)
        self._owns_connections = connections is None
        self._connections = connections or Connections(url.hostname, url.port or 80, timeout=timeout)
        self._busy_seconds = busy_seconds
        self._lock = threading.Lock()
        self.busy_retries = 0
        """Deliveries sent again because the gateway answered `503 overloaded`."""

    def deliver(self, items: Sequence[Mapping[str, Any]], *, delivery_id: str | None = None) -> list[str]:
        """Send the items as one delivery; returns their event ids once the gateway has them on disk.

        While the gateway answers `503 overloaded`, the delivery is sent again (same id, signed afresh) after a
        jittered pause growing from 50 ms to the 1 s its Retry-After asks, for up to `busy_seconds`."""
        body = orjson.dumps(list(items))
        msg_id = delivery_id or f"msg_{uuid.uuid4().hex}"
        deadline = time.monotonic() + self._busy_seconds
        pause = 0.05
        while True:
            headers = {
                "content-type": "application/json",
                **sign_with_key(self._signature, body, self._key, msg_id=msg_id),
            }
            status, content = self._post(body, headers)
            if status == 202:
                ids: list[str] = orjson.loads(content)["ids"]
                return ids
            payload = _payload(content)
            wait = random.uniform(pause / 2, pause)
            overloaded = status == 503 and isinstance(payload, dict) and payload.get("code") == _OVERLOADED
            if not overloaded or time.monotonic() + wait > deadline:
                message = payload.get("message") if isinstance(payload, dict) else str(payload)[:200]
                raise DeliveryFailed(f"the gateway answered {status}: {message}", status=status, body=payload)
            with self._lock:
                self.busy_retries += 1
            time.sleep(wait)
            pause = min(1.0, pause * 2)

    def _post(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        try:
            return self._connections.post(self._path, body, headers)
        except ConnectionFailed as exc:
            if not exc.stale:
                raise self._unreachable(exc) from None
        # A kept-alive connection the gateway closed as it was taken: sent again once, on a new connection.
        # Safe whatever the gateway had read: the same delivery id maps to the same events.
        try:
            return self._connections.post(self._path, body, headers, fresh=True)
        except ConnectionFailed as exc:
            raise self._unreachable(exc) from None

    def _unreachable(self, exc: ConnectionFailed) -> DeliveryFailed:
        cause = type(exc.__cause__).__name__ if exc.__cause__ else "ConnectionFailed"
        return DeliveryFailed(f"the gateway at {self._url} is unreachable: {cause}")

    def close(self) -> None:
        """Close the connections this sink opened itself (shared ones are their owner's to close)."""
        if self._owns_connections:
            self._connections.close()


def _payload(content: bytes) -> Any:
    """An answer's JSON, or its text when it is not JSON."""
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return content.decode(errors="replace")


class MemorySink:
    """Keeps what it is given; for tests of sources."""

    def __init__(self) -> None:
        self.deliveries: list[list[dict[str, Any]]] = []

    def deliver(self, items: Sequence[Mapping[str, Any]], *, delivery_id: str | None = None) -> list[str]:
        self.deliveries.append([dict(item) for item in items])
        return [str(item.get("id", "")) for item in items]
