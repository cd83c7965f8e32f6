"""Where every non-HTTP source delivers: the gateway's own inbox, over HTTP, signed like any
sender. One inbox means one set of guarantees: validated, fsync'd, batched, announced."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import httpx
import orjson

from flowhook.gateway.schemes import sign
from flowhook.sources.webhook import SourceConfig


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
    """Delivers to `POST <gateway>/hooks/<source>`, signed with the source's scheme and secret."""

    def __init__(
        self,
        base_url: str,
        source: str,
        config: SourceConfig,
        secret: str,
        *,
        client: httpx.Client | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._url = f"{base_url.rstrip('/')}/hooks/{source}"
        self._config = config
        self._secret = secret
        self._client = client or httpx.Client(timeout=timeout)

    def deliver(self, items: Sequence[Mapping[str, Any]], *, delivery_id: str | None = None) -> list[str]:
        """Send the items as one delivery; returns their event ids once the gateway has them on disk."""
        body = orjson.dumps(list(items))
        msg_id = delivery_id or f"msg_{uuid.uuid4().hex}"
        headers = {
            "content-type": "application/json",
            **sign(self._config.signature, body, self._secret, msg_id=msg_id),
        }
        try:
            response = self._client.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"the gateway at {self._url} is unreachable: {type(exc).__name__}") from None
        if response.status_code != 202:
            try:
                payload = response.json()
            except ValueError:
                payload = response.text
            message = payload.get("message") if isinstance(payload, dict) else str(payload)[:200]
            raise DeliveryFailed(
                f"the gateway answered {response.status_code}: {message}", status=response.status_code, body=payload
            )
        ids: list[str] = response.json()["ids"]
        return ids

    def close(self) -> None:
        self._client.close()


class MemorySink:
    """Keeps what it is given; for tests of sources."""

    def __init__(self) -> None:
        self.deliveries: list[list[dict[str, Any]]] = []

    def deliver(self, items: Sequence[Mapping[str, Any]], *, delivery_id: str | None = None) -> list[str]:
        self.deliveries.append([dict(item) for item in items])
        return [str(item.get("id", "")) for item in items]
