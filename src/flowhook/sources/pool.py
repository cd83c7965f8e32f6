"""The process's way into this machine's gateway, shared by `emit`, `emit_many` and the local sources: one
set of keep-alive connections per gateway address, and per (settings, source) one signer with the source's config and
HMAC key resolved once, read again every `REFRESH_SECONDS` or at once when the gateway refuses the signature.

Made on first use, shared by threads, closed at exit. A child made by `os.fork()` starts with an empty pool: the
sockets it inherits are its parent's, and a lock a parent's thread held at the fork would never be released."""

from __future__ import annotations

import atexit
import os
import threading
import time
import uuid
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from flowhook.gateway.secrets import REFERENCE_TTL, signing_secret
from flowhook.gateway.sources import SourceConfig
from flowhook.settings import Settings
from flowhook.sources.connections import Connections
from flowhook.sources.sink import DeliveryFailed, GatewaySink

__all__ = ["REFRESH_SECONDS", "LocalSink", "close_connections", "gateway_url"]

REFRESH_SECONDS = REFERENCE_TTL
"""How long a source's resolved config and secret are used before they are read again (as long as the gateway)."""

_TIMEOUT = 30.0


def gateway_url(settings: Settings) -> str:
    """The base URL of this machine's gateway under `settings`."""
    return f"http://{settings.gateway_host}:{settings.gateway_port}"


@dataclass(frozen=True)
class _Signer:
    sink: GatewaySink
    config: SourceConfig
    secret: str
    expires: float  # time.monotonic()


def _key(settings: Settings, source: str) -> Hashable:
    """What a signer depends on, by value: Settings is mutable and unhashable, and callers may build one per call."""
    given = None if settings.sources is None else settings.sources.get(source)
    return (
        settings.gateway_host,
        settings.gateway_port,
        source,
        settings.data_dir,
        settings.sources_file,
        None if given is None else given.model_dump_json(),
        None if settings.webhook_secret is None else settings.webhook_secret.get_secret_value(),
        settings.prefect_api_url,
    )


class _Pool:
    """The connections and signers of one process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.connections: dict[tuple[str, int], Connections] = {}
        self.signers: dict[Hashable, _Signer] = {}

    def signer(self, settings: Settings, source: str, *, stale: _Signer | None = None) -> _Signer:
        """The signer for `source` under `settings`; resolved again once expired, or if it is `stale`."""
        key = _key(settings, source)
        signer = self.signers.get(key)
        if signer is not None and signer is not stale and signer.expires > time.monotonic():
            return signer
        with self.lock:
            signer = self.signers.get(key)
            if signer is not None and signer is not stale and signer.expires > time.monotonic():
                return signer  # another thread resolved it meanwhile
            config, secret = settings.source_configs()[source], signing_secret(settings, source)
            expires = time.monotonic() + REFRESH_SECONDS
            if signer is not None and (signer.config, signer.secret) == (config, secret):
                signer = replace(signer, expires=expires)
            else:
                address = (settings.gateway_host, settings.gateway_port)
                connections = self.connections.get(address)
                if connections is None:
                    connections = self.connections[address] = Connections(*address, timeout=_TIMEOUT)
                sink = GatewaySink(gateway_url(settings), source, config, secret, connections=connections)
                signer = _Signer(sink, config, secret, expires)
            self.signers[key] = signer
            return signer

    def close(self) -> None:
        with self.lock:
            connections = list(self.connections.values())
            self.connections.clear()
            self.signers.clear()
        for each in connections:
            each.close()


_pool = _Pool()


def _start_afresh_in_child() -> None:
    global _pool
    _pool = _Pool()  # the parent's connections are dropped unused: closing them could wait on a parent's lock


os.register_at_fork(after_in_child=_start_afresh_in_child)


def close_connections() -> None:
    """Close this process's connections to the gateway (done at exit); the next delivery opens new ones."""
    _pool.close()


atexit.register(close_connections)


class LocalSink:
    """This machine's gateway as an `EventSink`, signed as `source`, through the process's shared connections."""

    def __init__(self, settings: Settings, source: str) -> None:
        self._settings = settings
        self._source = source

    def deliver(self, items: Sequence[Mapping[str, Any]], *, delivery_id: str | None = None) -> list[str]:
        """Send the items as one delivery; returns their event ids once the gateway has them on disk."""
        signer = _pool.signer(self._settings, self._source)
        delivery_id = delivery_id or f"msg_{uuid.uuid4().hex}"
        try:
            return signer.sink.deliver(items, delivery_id=delivery_id)
        except DeliveryFailed as exc:
            if exc.status != 401:
                raise
            # Signed with a secret read before a rotation: read it again now, and send once more if it changed.
            fresh = _pool.signer(self._settings, self._source, stale=signer)
            if fresh.secret == signer.secret and fresh.config == signer.config:
                raise
            return fresh.sink.deliver(items, delivery_id=delivery_id)

    def close(self) -> None:
        """Nothing to close: the connections are the process's (`close_connections`)."""
