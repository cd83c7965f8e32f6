"""A load whose truth is known: Poisson arrivals at a set λ (optionally a burst), service times from a set
distribution, served first-come first-served by c workers.

It checks the report: the simulated events go through the real store and the real report code, and
the report must find the λ, μ, percentiles and Little's law that the simulation put in.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from flowhook.sampling.log import SampleLog
from flowhook.sampling.recorder import Recorder
from flowhook.store import StoredEvent


@dataclass(frozen=True)
class Burst:
    """`rate` extra arrivals per second from `start` for `seconds` (offsets from the load's start)."""

    start: float
    seconds: float
    rate: float


def poisson_offsets(rate: float, seconds: float, rng: random.Random, *, burst: Burst | None = None) -> list[float]:
    """Arrival offsets in [0, seconds) of a Poisson process at `rate` per second, plus the burst's, sorted."""
    offsets = _poisson(rate, 0.0, seconds, rng)
    if burst is not None:
        offsets += _poisson(burst.rate, burst.start, min(seconds, burst.start + burst.seconds), rng)
    return sorted(offsets)


def _poisson(rate: float, start: float, end: float, rng: random.Random) -> list[float]:
    out: list[float] = []
    t = start + rng.expovariate(rate)
    while t < end:
        out.append(t)
        t += rng.expovariate(rate)
    return out


def service_times(count: int, mean: float, rng: random.Random, *, distribution: str = "exponential") -> list[float]:
    """`count` service times with the given mean: exponential, deterministic, or lognormal (σ = 0.5)."""
    if distribution == "exponential":
        return [rng.expovariate(1.0 / mean) for _ in range(count)]
    if distribution == "deterministic":
        return [mean] * count
    if distribution == "lognormal":
        sigma = 0.5
        mu = math.log(mean) - sigma**2 / 2  # so that the mean is `mean`
        return [rng.lognormvariate(mu, sigma) for _ in range(count)]
    raise ValueError(f"unknown distribution {distribution!r}")


@dataclass(frozen=True)
class Served:
    """One simulated event: when it arrived, started service and left, in seconds from the load's start."""

    arrived: float
    started: float
    done: float
    worker: int


def serve(arrivals: Sequence[float], services: Sequence[float], *, workers: int = 1) -> list[Served]:
    """First-come first-served over `workers` identical workers; each event takes its own service time."""
    free: list[tuple[float, int]] = [(0.0, w) for w in range(workers)]
    served = []
    for arrived, service in zip(arrivals, services, strict=True):
        free_at, worker = heapq.heappop(free)
        started = max(arrived, free_at)
        done = started + service
        heapq.heappush(free, (done, worker))
        served.append(Served(arrived=arrived, started=started, done=done, worker=worker))
    return served


def stored_events(
    served: Sequence[Served], *, start: datetime, event_type: str, sender_delay: float = 0.05, prefix: str = "sim"
) -> list[StoredEvent]:
    """The simulation as store rows: occurred `sender_delay` before arrival, emitted on arrival, one step per event."""
    events = []
    for i, s in enumerate(served):
        received = start + timedelta(seconds=s.arrived)
        events.append(
            StoredEvent(
                id=f"{prefix}-{event_type}-{i}",
                type=event_type,
                source="simulation",
                occurred=received - timedelta(seconds=sender_delay),
                received=received,
                emitted=received,
                started=start + timedelta(seconds=s.started),
                stored=start + timedelta(seconds=s.done),
                batch_id=f"{event_type}-sim-{i}",
                flow_run_id=f"worker-{event_type}-{s.worker}",
                status="ok",
                error=None,
                data={},
                result=None,
            )
        )
    return events


def write_samples(
    served: Sequence[Served], *, start: datetime, event_type: str, folder: Path, period: float = 0.1
) -> int:
    """What the gateway's sampler would have written for the simulation: every `period` seconds, the events
    arrived and not done (waiting: `ready`; in service: `claimed`), into sample files under `folder`.
    Returns the number of samples."""
    arrived = sorted(s.arrived for s in served)
    began = sorted(s.started for s in served)
    left = sorted(s.done for s in served)
    end = max(left, default=0.0) + 2 * period
    origin = start.timestamp()
    clock = [origin]
    recorder = Recorder(SampleLog(folder, writer="simulation"), clock=lambda: clock[0], cpu=lambda: 0.0)
    count = math.ceil(end / period) + 1
    for k in range(count):
        t = k * period
        in_system = bisect.bisect_right(arrived, t) - bisect.bisect_right(left, t)
        in_service = bisect.bisect_right(began, t) - bisect.bisect_right(left, t)
        clock[0] = origin + t
        recorder.sample({event_type: (0, in_system - in_service, 0, in_service)}, at=origin + t)
    clock[0] = origin + end + 1
    recorder.flush()
    return count
