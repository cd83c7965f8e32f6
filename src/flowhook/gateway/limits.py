"""Per-source rate limits (token buckets) and the spool's disk budget."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path


class TokenBucket:
    """`rate` deliveries a second on average, `burst` at once; `take` says how long to wait if empty."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = time.monotonic()

    def take(self, *, now: float | None = None) -> float:
        """0.0 if a delivery may pass now, else the seconds until one may."""
        now = time.monotonic() if now is None else now
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self.rate


def retry_after(seconds: float) -> str:
    """A Retry-After header value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))


def spool_bytes(roots: list[Path]) -> int:
    """Bytes of batch files under the given folders (events accepted and not yet stored)."""
    total = 0
    for root in roots:
        try:
            entries = list(os.scandir(root))
        except FileNotFoundError:
            continue
        for entry in entries:
            try:
                total += entry.stat().st_size
            except FileNotFoundError:
                continue
    return total
