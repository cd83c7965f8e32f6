"""`LoopLag` on a real event loop: a loop held busy past the target is late at once (before the overdue sample
has run), and on time again once it has caught up."""

from __future__ import annotations

import asyncio
import time

from flowhook.gateway.admission import LoopLag


def test_a_loop_held_busy_is_late_until_it_catches_up() -> None:
    async def run() -> tuple[bool, bool, bool]:
        lag = LoopLag(target=0.1, interval=0.01)
        lag.watch(asyncio.get_running_loop())
        await asyncio.sleep(0.05)
        before = lag.late()
        time.sleep(0.4)  # the loop's only thread busy: every callback waits, the lag sample too
        during = lag.late()  # the sample is overdue: late already
        deadline = time.monotonic() + 5
        while lag.late() and time.monotonic() < deadline:  # free again: the next samples are on time
            await asyncio.sleep(0.01)
        return before, during, lag.late()

    before, during, after = asyncio.run(run())
    assert (before, during, after) == (False, True, False)


def test_unwatched_it_is_never_late() -> None:
    assert not LoopLag(target=0.001).late()
