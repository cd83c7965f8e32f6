"""Tell Prefect about sealed batches: one `flowhook.batch.ready` event per batch, retried until sent."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx

from flowhook.names import BATCH_READY, EVENT_TYPE_LABEL, batch_resource
from flowhook.prefect_api import async_client, explain, refused
from flowhook.spool import BatchRef, BatchSpool

logger = logging.getLogger(__name__)

_NAMESPACE = uuid.UUID("0b9d6c3e-2a41-4d7b-8c55-5f0e3a7d2c18")


def batch_event(ref: BatchRef) -> dict[str, Any]:
    """The Prefect event announcing a batch. Its id derives from the batch, so a resend is deduplicated."""
    return {
        "id": str(uuid.uuid5(_NAMESPACE, ref.batch_id)),
        "occurred": (ref.emitted or datetime.now(UTC)).isoformat(),
        "event": BATCH_READY,
        "resource": {
            "prefect.resource.id": batch_resource(ref.batch_id),
            "prefect.resource.name": f"{ref.event_type} · {ref.count} events",
            EVENT_TYPE_LABEL: ref.event_type,
        },
        "related": [],
        "payload": ref.model_dump(mode="json"),
    }


class BatchSink(Protocol):
    """Where batch announcements go."""

    async def emit(self, refs: Sequence[BatchRef]) -> None: ...


class PrefectEventSink:
    """Posts batch events to a Prefect server's `POST /api/events`, with Prefect's credentials and TLS settings.

    One long-lived client (built once: Prefect's settings are read when the gateway starts). Plain HTTP, not
    Prefect's websocket events client: a 2xx says the server took the events, and only then is a batch
    marked sent; a websocket `emit` returns once the bytes are written, with no acknowledgement.
    """

    def __init__(self, api_url: str, client: httpx.AsyncClient | None = None) -> None:
        self._url = api_url.rstrip("/") + "/events"
        self._client = client or async_client(api_url)

    async def emit(self, refs: Sequence[BatchRef]) -> None:
        response = await self._client.post(self._url, json=[batch_event(ref) for ref in refs])
        response.raise_for_status()

    async def aclose(self) -> None:
        await self._client.aclose()


class MemorySink:
    """Keeps what it is sent; for tests."""

    def __init__(self) -> None:
        self.sent: list[BatchRef] = []

    async def emit(self, refs: Sequence[BatchRef]) -> None:
        self.sent.extend(refs)


class Forwarder:
    """Sends sealed batches to a sink in order, with capped exponential backoff while it is down."""

    def __init__(self, spool: BatchSpool, sink: BatchSink, *, max_group: int = 100, max_backoff: float = 5.0) -> None:
        self._spool = spool
        self._sink = sink
        self._queue: asyncio.Queue[BatchRef] = asyncio.Queue()
        self._max_group = max_group
        self._max_backoff = max_backoff
        self.sent = 0
        self.failures = 0
        self.refused: str | None = None
        """Why Prefect refuses the forwarder's credentials, while it does; None otherwise."""
        self._sending = False

    def submit(self, ref: BatchRef) -> None:
        self._queue.put_nowait(ref)

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing being sent: safe to stop."""
        return not self._sending and self._queue.empty()

    async def run(self) -> None:
        while True:
            group = [await self._queue.get()]
            self._sending = True
            while len(group) < self._max_group and not self._queue.empty():
                group.append(self._queue.get_nowait())
            try:
                await self._send(group)
            finally:
                self._sending = False

    async def _send(self, group: list[BatchRef]) -> None:
        delay = 0.1
        while True:
            emitted = datetime.now(UTC)
            stamped = [ref.model_copy(update={"emitted": emitted}) for ref in group]
            try:
                await self._sink.emit(stamped)
            except (httpx.HTTPError, OSError) as exc:
                self.failures += 1
                self._log_failure(exc, len(group), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_backoff)
                continue
            if self.refused is not None:
                logger.warning("Prefect accepts the forwarder's credentials again; %d batches sent", len(group))
                self.refused = None
            for ref in group:
                try:
                    await asyncio.to_thread(self._spool.mark_sent, ref.batch_id)
                except OSError as exc:  # S3 went away meanwhile: it stays READY, which runs and the sweeper treat alike
                    logger.warning("cannot mark %s as sent: %s", ref.batch_id, exc)
            self.sent += len(group)
            return

    def _log_failure(self, exc: Exception, waiting: int, delay: float) -> None:
        """A refusal (401/403) is logged once, when it starts: retrying does not fix credentials, so a line per
        retry would only bury it. An outage is logged on every retry, as before."""
        if not refused(exc):
            logger.warning("cannot reach Prefect (%s); %d batches wait, retry in %.1fs", exc, waiting, delay)
            self.refused = None
            return
        reason = explain(exc)
        if reason != self.refused:
            logger.error("%s; %d batches wait in the spool, retried with backoff", reason, waiting)
            self.refused = reason
