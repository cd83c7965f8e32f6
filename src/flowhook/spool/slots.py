"""Locks that let several gateway processes share one spool folder.

Each process appends to its open batches in its own slot, `open/<slot>/`, and holds an exclusive `flock` on
`open/<slot>/.lock` for as long as it lives. The kernel drops that lock when the process dies, however it
dies (SIGKILL too), so a slot whose lock another process can take is an orphan: its batches were
acknowledged and are sealed by whoever finds it. A slot is made under a hidden name with its lock already
held and only then renamed into place, so no process can find it unlocked.

`locks/<type>.lock` serialises, across processes, sealing a batch of that type with the decision whether
it wakes a run; `locks/sampler.lock` names the one process that samples the shared state folders.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import secrets
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

LOCK = ".lock"
_HIDDEN = "."


class FileLock:
    """An exclusive `flock` on one file, taken without blocking; the kernel releases it if the process dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> bool:
        """Take the lock if no other holder has it; True when this object holds it (now or already)."""
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


class Slot:
    """This process's folder of open batches, locked for its lifetime."""

    def __init__(self, path: Path, lock: FileLock) -> None:
        self.path = path
        self._lock = lock

    @classmethod
    def claim(cls, open_root: Path) -> Slot:
        """Make a new slot under `open_root`, locked before any other process can see it."""
        name = f"{os.getpid()}-{secrets.token_hex(4)}"
        hidden = open_root / f"{_HIDDEN}new-{name}"
        hidden.mkdir(parents=True)
        lock = FileLock(hidden / LOCK)
        if not lock.acquire():  # a fresh, unlisted file: nobody else can hold it
            raise RuntimeError(f"cannot lock the new spool slot {hidden}")
        final = open_root / name
        os.rename(hidden, final)  # the open descriptor, and its flock, follow the inode
        lock.path = final / LOCK
        return cls(final, lock)

    def close(self) -> None:
        """Remove the (empty) slot, then drop its lock: a clean stop leaves nothing to recover."""
        with contextlib.suppress(OSError):
            (self.path / LOCK).unlink()
            self.path.rmdir()
        self._lock.release()


@contextlib.contextmanager
def orphan(slot: Path) -> Iterator[list[Path] | None]:
    """The batch files of `slot` while this process holds its lock, or None when a live process holds it.

    On leaving (the caller sealed the files), the slot is removed while still locked, so a process that
    locks it next finds nothing to do.
    """
    lock = FileLock(slot / LOCK)
    try:
        taken = lock.acquire()
    except FileNotFoundError:  # removed meanwhile by another process that recovered it
        yield None
        return
    if not taken:
        yield None
        return
    try:
        yield sorted(slot.glob("*.jsonl"))
        if not any(slot.glob("*.jsonl")):
            shutil.rmtree(slot, ignore_errors=True)
    finally:
        lock.release()


def slot_folders(open_root: Path, *, unfinished_after: float = 60.0) -> list[Path]:
    """Every visible slot under `open/` (hidden ones are being made, and are locked). A hidden one older than
    `unfinished_after` seconds was left by a process that died making it (it holds no batch): removed."""
    try:
        entries = list(os.scandir(open_root))
    except FileNotFoundError:
        return []
    now = time.time()
    for entry in entries:
        if entry.is_dir() and entry.name.startswith(f"{_HIDDEN}new-"):
            with contextlib.suppress(OSError):
                if now - entry.stat().st_mtime > unfinished_after:
                    shutil.rmtree(entry.path, ignore_errors=True)
    return [Path(entry.path) for entry in entries if entry.is_dir() and not entry.name.startswith(_HIDDEN)]


class TypeLocks:
    """Per-type locks over the spool's `locks/` folder: one holder per type across processes and tasks.

    An asyncio lock queues this process's tasks; the file lock is then polled without blocking, so a wait
    never ties up a thread of the loop's pool.
    """

    def __init__(self, folder: Path, *, poll_seconds: float = 0.002) -> None:
        self._folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._poll = poll_seconds
        self._local: dict[str, asyncio.Lock] = {}

    @contextlib.asynccontextmanager
    async def hold(self, event_type: str) -> AsyncIterator[None]:
        local = self._local.setdefault(event_type, asyncio.Lock())
        async with local:
            lock = FileLock(self._folder / f"{event_type}.lock")
            while not lock.acquire():
                await asyncio.sleep(self._poll)
            try:
                yield
            finally:
                lock.release()
