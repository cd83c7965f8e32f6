"""Admission past capacity: how late the gateway's event loop runs, the wait a new request would queue for.

Every request's work runs on the one event loop, so when the gateway is offered more than it can do, the
excess waits there (in the loop's queue of ready callbacks and in unread sockets). `LoopLag` measures that
wait as the lateness of a timer due every `interval` seconds; past `target`, the protocol refuses new
deliveries at once (503 `overloaded`) until the loop catches up. Requests waiting on the disk (the group
commit's fsync) cost no loop time and are not counted: they raise throughput, not the wait.
"""

from __future__ import annotations

import asyncio


class LoopLag:
    """The event loop's lateness, sampled every `interval` s; `late()` says whether it is past `target`."""

    def __init__(self, target: float, interval: float = 0.01) -> None:
        self.target = target
        self.interval = interval
        self.lag = 0.0
        """The lateness of the last timer that ran."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._due = 0.0

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start sampling `loop` (once; a later call for the same loop does nothing)."""
        if self._loop is loop:
            return
        self._loop = loop
        self._schedule()

    def late(self) -> bool:
        """Whether the loop runs more than `target` late: as last sampled, or as the next sample is overdue now
        (I/O callbacks run before the timers that fell due meanwhile, so the sample may not have run yet)."""
        if self._loop is None:
            return False
        return max(self.lag, self._loop.time() - self._due) > self.target

    def _schedule(self) -> None:
        assert self._loop is not None
        self._due = self._loop.time() + self.interval
        self._loop.call_at(self._due, self._tick)

    def _tick(self) -> None:
        assert self._loop is not None
        self.lag = self._loop.time() - self._due
        if not self._loop.is_closed():
            self._schedule()
