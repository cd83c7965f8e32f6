"""The gateway's own policy: what it spends on a client before the client has proven anything.

Composed into the app's settings as `ingress` (FLOWHOOK_INGRESS__HEADER_TIMEOUT_SECONDS, ...).
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class IngressLimits(BaseModel):
    """What the gateway spends on a client before it has proven anything: time, connections, and answers to
    deliveries that fail verification (each client address has its own budget, apart from the sources')."""

    header_timeout_seconds: float = Field(
        default=10.0, gt=0, description="A request's header section must arrive within this long, or 408 and close."
    )
    body_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A request's body must arrive within this long of its headers, or 408 and close.",
    )
    max_connections: int = Field(
        default=1000, ge=2, description="Open connections at most; a request past it is answered 503 at once."
    )
    max_loop_lag_seconds: float = Field(
        default=0.05,
        gt=0,
        description=(
            "How late the event loop may run (the wait a new request queues for before its turn) before deliveries"
            " are answered 503 `overloaded` with Retry-After at once, before their bodies are read."
        ),
    )
    max_in_flight: int = Field(
        # One process gets through ~3,000 deliveries/s: 128 at once is ~40 ms of work queued, where 512 let an
        # accepted delivery wait 1.2-1.6 s at twice capacity (bench/overload.py; p99 75-140 ms with 128).
        default=128,
        ge=1,
        description=(
            "Requests being processed at once at most (those waiting on the disk's fsync included); past it a"
            " delivery is answered 503 `overloaded` like past the loop's lag (`max_connections` or more: off)."
        ),
    )
    unverified_rate: float = Field(
        default=5.0, gt=0, description="Deliveries per second a client address may send that fail verification."
    )
    unverified_burst: int = Field(default=20, ge=1, description="Such deliveries at once, before 429.")
    unverified_addresses: int = Field(
        default=10_000, ge=1, description="Client addresses whose budget is kept; the least recent are forgotten."
    )
