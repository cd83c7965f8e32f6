"""Rate limits (token buckets per source, and per client address for unverified deliveries) and the spool's
disk budget."""

from __future__ import annotations

import math
import os
import time
from collections import OrderedDict
from pathlib import Path


class TokenBucket:
    """`rate` deliveries a second on average, `burst` at once; `take` says how long to wait if empty."""

    def __init__(self, rate: float, burst: int, *, now: float | None = None) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = time.monotonic() if now is None else now

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
                if entry.is_dir():  # a gateway process's slot of open batches
                    total += spool_bytes([Path(entry.path)])
                else:
                    total += entry.stat().st_size
            except FileNotFoundError:
                continue
    return total


class AddressBuckets:
    """One `TokenBucket` per client address, for deliveries that fail verification.

    Unsigned or forged traffic spends these, never a source's budget, so it cannot make real senders
    wait. At most `max_addresses` buckets are kept (least recently used dropped first): an address
    forgotten starts again with a full burst, which is the worst a flood of many addresses gets.
    """

    def __init__(self, rate: float, burst: int, max_addresses: int) -> None:
        self.rate = rate
        self.burst = burst
        self.max_addresses = max_addresses
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, address: str, *, now: float | None = None) -> float:
        """0.0 if one more unverified delivery from `address` may be answered 401 now, else the wait."""
        bucket = self._buckets.pop(address, None)
        if bucket is None:
            bucket = TokenBucket(self.rate, self.burst, now=now)
            if len(self._buckets) >= self.max_addresses:
                self._buckets.popitem(last=False)
        self._buckets[address] = bucket
        return bucket.take(now=now)

    def __len__(self) -> int:
        return len(self._buckets)
