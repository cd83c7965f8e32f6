"""M/M/c capacity forecast: how tail latency grows with load, and how many workers a latency target needs.

Pure (stdlib only, no I/O) so a report can set a forecast beside its measured figures and tests can check
the maths directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MODEL: str = (
    "M/M/c queue: events arrive as a Poisson stream at the observed rate λ and are served by c identical "
    "workers, each taking an exponential time at rate μ (the measured per-worker capacity), from one FIFO "
    "queue with an unlimited buffer, in steady state. Latency is a fixed delay d (batching plus flow-run "
    "start, measured) plus the M/M/c time in system (queue wait + service). Batching makes real service "
    "less variable than exponential, so the queueing part errs on the safe side."
)

_REL_TOL = 1e-9


def _check(arrival_rate: float, service_rate: float, servers: int, q: float) -> None:
    if not 0 < service_rate < math.inf:
        raise ValueError(f"service_rate must be positive and finite, got {service_rate!r}")
    if servers < 1:
        raise ValueError(f"servers must be at least 1, got {servers!r}")
    if not arrival_rate >= 0:
        raise ValueError(f"arrival_rate must be non-negative, got {arrival_rate!r}")
    if not 0 < q < 1:
        raise ValueError(f"q must lie strictly between 0 and 1, got {q!r}")


def _erlang_b(servers: int, offered_load: float) -> float:
    # The recursion keeps B in [0, 1], so unlike a^c/c! it neither overflows nor cancels for large c.
    b = 1.0
    for k in range(1, servers + 1):
        b = offered_load * b / (k + offered_load * b)
    return b


def _erlang_c_from_b(servers: int, offered_load: float, blocking: float) -> float:
    if offered_load >= servers:
        return 1.0
    return min(1.0, servers * blocking / (servers - offered_load * (1.0 - blocking)))


def erlang_c(servers: int, offered_load: float) -> float:
    """P(an arrival waits) in M/M/c with offered load a = λ/μ (Erlang C); 1.0 when a >= c (no steady state)."""
    if servers < 1:
        raise ValueError(f"servers must be at least 1, got {servers!r}")
    if not offered_load >= 0:
        raise ValueError(f"offered_load must be non-negative, got {offered_load!r}")
    if offered_load >= servers:
        return 1.0
    return _erlang_c_from_b(servers, offered_load, _erlang_b(servers, offered_load))


def _survival(t: float, service_rate: float, drain_rate: float, wait_prob: float) -> float:
    """P(T > t) for T = Wq + S, written as e^{-μt} + C·μ·∫₀ᵗ e^{-βs} e^{-μ(t-s)} ds.

    The integral is t·e^{-min·t}·(1 - e^{-x})/x with x = |β - μ|·t, computed with expm1: no cancellation
    as β → μ, no overflow when β < μ, and x = 0 gives the β = μ (Erlang-2) case e^{-μt}(1 + C·μt).
    """
    slow, fast = min(service_rate, drain_rate), max(service_rate, drain_rate)
    x = (fast - slow) * t
    ratio = 1.0 if x == 0 else -math.expm1(-x) / x
    return math.exp(-service_rate * t) + wait_prob * service_rate * t * math.exp(-slow * t) * ratio


def _quantile(service_rate: float, drain_rate: float, wait_prob: float, q: float) -> float:
    tail = 1.0 - q
    lo = -math.log1p(-q) / service_rate  # the Exp(μ) quantile: T >= S, so a lower bound
    if wait_prob == 0:
        return lo
    hi = 2.0 * lo
    while _survival(hi, service_rate, drain_rate, wait_prob) > tail:
        lo, hi = hi, 2.0 * hi
    while hi - lo > _REL_TOL * hi:
        mid = 0.5 * (lo + hi)
        if _survival(mid, service_rate, drain_rate, wait_prob) > tail:
            lo = mid
        else:
            hi = mid
    return hi


def sojourn_quantile(arrival_rate: float, service_rate: float, servers: int, q: float) -> float:
    """The q-quantile of time in system (wait + service) for M/M/c; math.inf when unstable (λ >= cμ).

    Exact: Wq is 0 with probability 1 - C, else Exp(cμ - λ), and service S ~ Exp(μ) is independent.
    """
    _check(arrival_rate, service_rate, servers, q)
    drain_rate = servers * service_rate - arrival_rate
    if drain_rate <= 0:
        return math.inf
    wait_prob = erlang_c(servers, arrival_rate / service_rate)
    return _quantile(service_rate, drain_rate, wait_prob, q)


def saturation_rate(service_rate: float, servers: int) -> float:
    """c·μ: the arrival rate at which the queue, and so latency, grows without bound."""
    if servers < 1:
        raise ValueError(f"servers must be at least 1, got {servers!r}")
    return servers * service_rate


def workers_needed(
    arrival_rate: float,
    service_rate: float,
    target_seconds: float,
    *,
    fixed_delay: float = 0.0,
    q: float = 0.99,
    max_servers: int = 10_000,
) -> int | None:
    """Fewest workers c whose fixed_delay + sojourn q-quantile <= target; None when no c <= max_servers does
    (e.g. fixed_delay alone is over the target, or 1/μ service alone is)."""
    _check(arrival_rate, service_rate, 1, q)
    if not fixed_delay >= 0:
        raise ValueError(f"fixed_delay must be non-negative, got {fixed_delay!r}")
    budget = target_seconds - fixed_delay
    # The quantile falls as c grows but never below the Exp(μ) service quantile, so that bounds every c.
    if not budget >= -math.log1p(-q) / service_rate:
        return None
    offered_load = arrival_rate / service_rate
    if offered_load >= max_servers:
        return None
    servers = math.floor(offered_load) + 1  # the smallest stable c
    while servers * service_rate <= arrival_rate:  # guards rounding in λ/μ
        servers += 1
    blocking = _erlang_b(servers, offered_load)
    while servers <= max_servers:
        wait_prob = _erlang_c_from_b(servers, offered_load, blocking)
        drain_rate = servers * service_rate - arrival_rate
        if _quantile(service_rate, drain_rate, wait_prob, q) <= budget:
            return servers
        servers += 1
        blocking = offered_load * blocking / (servers + offered_load * blocking)
    return None


@dataclass(frozen=True)
class Forecast:
    """What the M/M/c model says about today's load and workers, and what a latency target would take."""

    model: str
    arrival_rate: float
    service_rate: float
    servers: int
    fixed_delay: float
    utilisation: float
    saturation_rate: float
    quantile: float
    latency_quantile: float
    target_seconds: float
    workers_needed: int | None


def forecast(
    arrival_rate: float,
    service_rate: float,
    *,
    servers: int = 1,
    fixed_delay: float = 0.0,
    target_seconds: float,
    q: float = 0.99,
) -> Forecast | None:
    """Forecast latency at today's λ and c, and the workers a target needs; None when service_rate <= 0
    (nothing measured to forecast from)."""
    if not service_rate > 0:
        return None
    latency = fixed_delay + sojourn_quantile(arrival_rate, service_rate, servers, q)
    return Forecast(
        model=MODEL,
        arrival_rate=arrival_rate,
        service_rate=service_rate,
        servers=servers,
        fixed_delay=fixed_delay,
        utilisation=arrival_rate / (servers * service_rate),
        saturation_rate=saturation_rate(service_rate, servers),
        quantile=q,
        latency_quantile=latency,
        target_seconds=target_seconds,
        workers_needed=workers_needed(arrival_rate, service_rate, target_seconds, fixed_delay=fixed_delay, q=q),
    )
