"""The gateway's durable inbox: append events to open batch files, fsync before acknowledging.

Group commit: a request's lines wait in memory for the next commit, which writes each batch file's lines in
one call and fsyncs every file written since the previous commit; then every request it covered is answered.
Commits start at most every `COMMIT_SECONDS` (a request after a quiet spell is committed at once): back to
back, at a few thousand deliveries a second, each would cover one or two requests, and a write call plus an
fsync handed to a thread per request were ~13 % of the gateway's CPU per delivery.

Several gateway processes may share one spool: each writes in its own locked slot of `open/`
(`flowhook.spool.slots`), seals a batch and decides whether it wakes a run under its type's lock, and
seals the batches of any slot whose process died (found at start and every `recover_seconds`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from flowhook.events import Event
from flowhook.spool.batches import BatchRef, State, encode_event, new_batch_id
from flowhook.spool.config import BatchPolicy
from flowhook.spool.folder import Spool
from flowhook.spool.slots import Slot, TypeLocks, orphan, slot_folders

logger = logging.getLogger(__name__)

COMMIT_SECONDS = 0.002
"""The least time between the starts of two syncs: at most 500 a second, each covering what came meanwhile."""


class InboxUnavailable(RuntimeError):
    """The inbox could not make events durable (disk full, I/O error): do not acknowledge."""


@dataclass(eq=False)
class _Segment:
    batch_id: str
    event_type: str
    path: Path
    file: BinaryIO
    opened: float = field(default_factory=time.monotonic)
    count: int = 0
    """Events handed to this batch: on disk, or in `pending` for the next commit to write."""
    pending: list[bytes] = field(default_factory=list)
    """Lines (one event each) waiting for the next commit."""
    broken: bool = False

    def write_out(self) -> None:
        """Write what waits to the file (a failed write drops it from `count`: never acknowledged)."""
        if not self.pending:
            return
        data, lines = memoryview(b"".join(self.pending)), len(self.pending)
        self.pending.clear()
        try:
            while data:
                data = data[self.file.write(data) or len(data) :]
            self.file.flush()
        except OSError:
            self.count -= lines
            raise

    def drop_pending(self) -> None:
        """Forget the lines waiting: their requests are answered with an error, so they were never acknowledged."""
        self.count -= len(self.pending)
        self.pending.clear()


class Inbox:
    """Open batch files per event type, group-committed, sealed by size or age."""

    def __init__(
        self,
        spool: Spool,
        *,
        policy: Callable[[str], BatchPolicy],
        on_sealed: Callable[[BatchRef], None],
        tick_seconds: float = 0.05,
        waiting: Callable[[str], bool] | None = None,
        seal_at_once: Callable[[str], bool] | None = None,
        recover_seconds: float = 5.0,
        on_recovered: Callable[[BatchRef], None] | None = None,
        commit_seconds: float = COMMIT_SECONDS,
    ) -> None:
        """`waiting(type)`: whether an earlier batch of the type waits for a run (default: one in `spool`).
        `seal_at_once(type)`: whether a new batch of the type will wake a run, so is sealed as soon as its
        first events are on disk (default: never; it waits for `max_seconds`).
        `on_recovered(ref)`: a dead process's batch, sealed here while running (default: `on_sealed`); its run
        is best woken without asking whether one is on its way, since that process may have died deciding."""
        self._spool = spool
        self._waiting = waiting or (lambda event_type: bool(spool.waiting(event_type)))
        self._seal_at_once = seal_at_once
        self._policy = policy
        self._on_sealed = on_sealed
        self._on_recovered = on_recovered or on_sealed
        self._tick = tick_seconds
        self._commit_every = commit_seconds
        self._last_sync = -math.inf
        self._open: dict[str, _Segment] = {}
        self._dirty: set[_Segment] = set()
        self._waiters: list[asyncio.Future[None]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._sealing: set[asyncio.Task[None]] = set()
        self._unsealed: dict[str, _Segment] = {}  # detached segments not yet in ready/: still open on disk
        self._recover_every = recover_seconds
        self._slot: Slot | None = None
        self._locks = TypeLocks(spool.root / "locks")

    async def start(self, *, ready: bool = True) -> list[BatchRef]:
        """Take a slot, recover what dead processes left (open files are sealed as they are), start sealing by age.

        Returns the batches to forward to Prefect: with `ready`, every sealed one in `ready/` (as one process
        alone on its spool does at start); without, only those it recovered now.
        """
        self._slot = await asyncio.to_thread(Slot.claim, self._spool.root / State.OPEN.value)
        recovered = await asyncio.to_thread(self._recover_files)
        if ready:
            waiting = sorted(self._spool.entries(State.READY), key=lambda entry: -entry[1])  # oldest first
            batch_ids = [batch_id for batch_id, _ in waiting]
        else:
            batch_ids = recovered
        pending = []
        for batch_id in batch_ids:
            with contextlib.suppress(FileNotFoundError):  # taken by a run meanwhile
                pending.append(self._spool.ref(State.READY, batch_id))
        self._ticker = asyncio.create_task(self._seal_by_age(), name="inbox-ticker")
        return pending

    async def append(self, events: Sequence[Event]) -> None:
        """Write `events` to their open batches and return once they are on disk."""
        by_type: dict[str, list[bytes]] = defaultdict(list)
        for event in events:
            by_type[event.type].append(encode_event(event))
        opened: list[_Segment] = []
        for event_type, lines in by_type.items():
            limit = self._policy(event_type).max_events
            while lines:
                new = event_type not in self._open
                segment = self._segment(event_type)
                if new:
                    opened.append(segment)
                chunk, lines = lines[: limit - segment.count], lines[limit - segment.count :]
                self._write(segment, chunk)
                if segment.count >= limit:
                    self._start_seal(segment)  # detached now: later appends open a new batch
        await self._commit()
        if self._seal_at_once is not None:
            for segment in opened:  # what else arrived during the commit rides along; later events open the next
                if self._open.get(segment.event_type) is segment and self._seal_at_once(segment.event_type):
                    self._start_seal(segment)

    async def close(self) -> None:
        """Seal every open batch (so it is forwarded on the next start) and stop."""
        if self._ticker:
            self._ticker.cancel()
        for segment in list(self._open.values()):
            self._start_seal(segment)
        if self._sealing:
            await asyncio.gather(*self._sealing, return_exceptions=True)
        if self._slot is not None:
            self._slot.close()
            self._slot = None

    def open_counts(self) -> dict[str, int]:
        return {name: seg.count for name, seg in self._open.items()}

    def open_batches(self) -> dict[str, tuple[str, int]]:
        """{batch id: (type, events)} of every batch still in open/: taking events, or being sealed (while its
        file is still there: once renamed, another process sampling ready/ counts it, though this loop may not
        have heard of the rename yet)."""
        sealing = [seg for seg in self._unsealed.values() if seg.path.exists()]
        return {seg.batch_id: (seg.event_type, seg.count) for seg in [*self._open.values(), *sealing]}

    def _segment(self, event_type: str) -> _Segment:
        segment = self._open.get(event_type)
        if segment is None:
            batch_id = new_batch_id(event_type)
            assert self._slot is not None, "append before start"
            path = self._spool.open_path(self._slot.path, batch_id)
            # Unbuffered: lines wait in `pending` until a commit writes them in one call.
            segment = _Segment(batch_id=batch_id, event_type=event_type, path=path, file=path.open("ab", buffering=0))
            self._open[event_type] = segment
        return segment

    def _write(self, segment: _Segment, lines: list[bytes]) -> None:
        """For the next commit, which writes every request's lines to a batch file in one call, then syncs it."""
        segment.pending += lines
        segment.count += len(lines)
        self._dirty.add(segment)

    def _abandon(self, segment: _Segment) -> None:
        # A failed write may leave a torn line: nothing more may be appended after it.
        segment.broken = True
        self._start_seal(segment)

    async def _commit(self) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_loop(), name="inbox-flusher")
        await waiter

    async def _flush_loop(self) -> None:
        while self._waiters:
            pause = self._last_sync + self._commit_every - time.monotonic()
            if pause > 0:  # what arrives meanwhile rides on this sync
                await asyncio.sleep(pause)
            self._last_sync = time.monotonic()
            waiters, self._waiters = self._waiters, []
            dirty, self._dirty = self._dirty, set()
            try:
                what = "write"
                for segment in dirty:
                    segment.write_out()
                what = "sync"
                await asyncio.to_thread(_fsync_all, [seg.file.fileno() for seg in dirty])
            except OSError as exc:
                for segment in dirty:
                    segment.drop_pending()  # a segment after the failed one
                    self._abandon(segment)
                error = InboxUnavailable(f"cannot {what} the inbox: {exc.strerror}")
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(error)
                continue
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _start_seal(self, segment: _Segment) -> None:
        if self._open.get(segment.event_type) is not segment:
            return  # already sealing
        del self._open[segment.event_type]
        self._unsealed[segment.batch_id] = segment
        task = asyncio.create_task(self._seal(segment), name=f"seal-{segment.batch_id}")
        self._sealing.add(task)
        task.add_done_callback(self._sealing.discard)

    async def _seal(self, segment: _Segment) -> None:
        try:
            await self._seal_file(segment)
        finally:
            self._unsealed.pop(segment.batch_id, None)

    async def _seal_file(self, segment: _Segment) -> None:
        # Wait for one more commit: the last fsync that covered this file is then finished.
        try:
            await self._commit()
        except InboxUnavailable:
            logger.warning("sealing %s after a failed sync", segment.batch_id)
        try:
            segment.file.close()
        except OSError:
            # A failed write left bytes in the buffer; what was acknowledged is on disk already.
            logger.warning("closing %s after a failed write", segment.batch_id)
        if segment.count == 0:
            segment.path.unlink(missing_ok=True)
            return
        await self._publish(segment.path, segment.batch_id, segment.event_type, segment.count)

    async def _publish(self, path: Path, batch_id: str, event_type: str, count: int) -> None:
        """Move a batch into `ready/` and tell `on_sealed`, under the type's lock: whether it wakes a run is then
        decided with every other process's batches of the type either in `ready/` already or not yet sealed."""
        async with self._locks.hold(event_type):
            moved = await asyncio.to_thread(self._spool.seal_file, path, batch_id)
            # No longer open, from now: another process sampling ready/ counts it there, not twice.
            self._unsealed.pop(batch_id, None)
            if not moved:
                return  # sealed by another process (an orphan's batch, recovered twice)
            self._on_sealed(BatchRef(batch_id=batch_id, event_type=event_type, count=count, sealed=datetime.now(UTC)))

    def _recover_files(self) -> list[str]:
        """Seal into `ready/` the open batches of dead processes' slots and of a flat `open/` (an older gateway's);
        their ids. Never another live process's: its slot's lock is held."""
        sealed = []
        for batch_id, path in list(self._spool.open_files()):
            if path.parent.name == State.OPEN.value and self._spool.seal_file(path, batch_id):
                sealed.append(batch_id)
        own = self._slot.path if self._slot is not None else None
        for folder in slot_folders(self._spool.root / State.OPEN.value):
            if folder == own:
                continue
            with orphan(folder) as paths:
                for path in paths or []:
                    batch_id = path.name.removesuffix(".jsonl")
                    if self._spool.seal_file(path, batch_id, touch=True):
                        logger.warning("sealed %s, left open by a gateway process that died", batch_id)
                        sealed.append(batch_id)
        return sealed

    async def _recover(self) -> None:
        """Seal what dead processes left, and hand each batch to `on_recovered`."""
        for batch_id in await asyncio.to_thread(self._recover_files):
            try:
                ref = await asyncio.to_thread(self._spool.ref, State.READY, batch_id)
            except FileNotFoundError:
                continue  # a run took it already
            self._on_recovered(ref)

    async def _seal_by_age(self) -> None:
        last_recovery = time.monotonic()
        while True:
            await asyncio.sleep(self._tick)
            now = time.monotonic()
            if self._recover_every > 0 and now - last_recovery >= self._recover_every:
                last_recovery = now
                try:
                    await self._recover()
                except OSError as exc:
                    logger.warning("cannot recover orphaned open batches: %s", exc)
            for segment in list(self._open.values()):
                policy = self._policy(segment.event_type)
                age = now - segment.opened
                if age < policy.max_seconds:
                    continue
                if age < policy.hold_seconds and self._waiting(segment.event_type):
                    continue  # an earlier batch of the type still waits for a run: keep growing
                self._start_seal(segment)


def _fsync_all(fds: list[int]) -> None:
    for fd in fds:
        os.fsync(fd)
