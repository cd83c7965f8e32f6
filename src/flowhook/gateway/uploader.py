"""Move sealed batches from the gateway's disk to the shared spool (S3), oldest first, before Prefect hears of them.

The inbox stays local, so an acknowledgement never waits for S3. A sealed batch is uploaded and only then
deleted from `ready/` on the gateway's disk and handed on; while S3 cannot be reached the batches wait
there and are retried with capped backoff (and at the next start if the gateway stops first). A crash
between the upload and the delete uploads the batch again on restart, to the same key: nothing changes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from flowhook.durable import fsync_dir
from flowhook.spool import BatchRef, BatchSpool, Spool, State

logger = logging.getLogger(__name__)


def upload_batch(local: Spool, shared: BatchSpool, ref: BatchRef) -> BatchRef | None:
    """Copy one sealed batch from `local`'s `ready/` to `shared`, then delete the local file. The shared
    spool's reference, or None when there is nothing left to hand on (uploaded before, or done there)."""
    path = local.path(State.READY, ref.batch_id)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None  # uploaded and deleted already (submitted twice)
    stored = shared.put_batch(ref, data)
    path.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return stored


class Uploader:
    """Uploads submitted batches one at a time, in order, retrying while the shared spool is down."""

    def __init__(
        self,
        local: Spool,
        shared: BatchSpool,
        *,
        on_uploaded: Callable[[BatchRef], Awaitable[None]],
        max_backoff: float = 5.0,
    ) -> None:
        self._local = local
        self._shared = shared
        self._on_uploaded = on_uploaded
        self._max_backoff = max_backoff
        self._queue: asyncio.Queue[BatchRef] = asyncio.Queue()
        self._busy = False
        self.uploaded = 0
        self.failures = 0

    def submit(self, ref: BatchRef) -> None:
        self._queue.put_nowait(ref)

    @property
    def backlog(self) -> int:
        return self._queue.qsize() + self._busy

    @property
    def idle(self) -> bool:
        return not self._busy and self._queue.empty()

    async def run(self) -> None:
        while True:
            ref = await self._queue.get()
            self._busy = True
            try:
                stored = await self._upload(ref)
                if stored is not None:
                    await self._on_uploaded(stored)
            finally:
                self._busy = False

    async def _upload(self, ref: BatchRef) -> BatchRef | None:
        delay = 0.1
        while True:
            try:
                stored = await asyncio.to_thread(upload_batch, self._local, self._shared, ref)
            except Exception as exc:  # SpoolUnavailable, the local file unreadable; anything else must not stop us
                self.failures += 1
                logger.warning(
                    "cannot upload %s to %s (%s); %d batches wait on disk, retry in %.1fs",
                    ref.batch_id,
                    self._shared.url,
                    exc,
                    self.backlog,
                    delay,
                    exc_info=not isinstance(exc, OSError),
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_backoff)
                continue
            self.uploaded += 1
            return stored
