"""A type whose handler spends a set CPU time per event: `bench/report_truth.py` makes the handler the
bottleneck with it (FLOWHOOK_EVENT_MODULES='["bench.slow_type"]')."""

from __future__ import annotations

import random
import time
from datetime import datetime
from typing import Any

from pydantic import Field

from flowhook.events import EventData, Result, event_type

SLOW = "bench_slow"
HANDLER_SECONDS = 0.002
"""CPU time the handler spends per event: its capacity is about 500 events/s."""


class BenchSlow(EventData):
    """An event that takes its handler 2 ms of CPU."""

    n: int = Field(ge=0, description="Any number.")


@event_type(SLOW, BenchSlow)
def handle_bench_slow(data: BenchSlow) -> Result:
    """Spin for HANDLER_SECONDS (CPU, as real work would be, not a sleep)."""
    until = time.perf_counter() + HANDLER_SECONDS
    spins = 0
    while time.perf_counter() < until:
        spins += 1
    return {"n": data.n, "spins": spins}


def slow_item(rng: random.Random, now: datetime) -> dict[str, Any]:
    """One delivery item of the type, for `bench.loadgen.build_requests`."""
    return {"type": SLOW, "data": {"n": rng.randrange(1_000_000)}, "timestamp": now.isoformat()}
