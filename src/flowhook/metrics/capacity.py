"""Capacity per stage, and the stage that limits the pipeline: measured from the stack's own figures.

An event passes three stages that can run out of capacity, each measured in the window:

- gateway: one process (one core, by the GIL) that verifies, validates and fsyncs each delivery. Its
  capacity is the deliveries it answered per CPU-second it used, in events (× events per accepted delivery);
  its load, the events offered (accepted, refused, quarantined or timed out). Its idle work (sampling, timers)
  counts against it, so at low load the capacity is underestimated: on the safe side.
- worker/<type>: a type's awake run, handling and storing its batches one step at a time. Capacity: events
  stored per second of step time (started→stored); load: the type's λ.
- store: the DuckDB file, which one writer holds at a time, so the steps of every type queue for it.
  Capacity: events stored per second of step time over all types; ρ: the share of the window some step held it.

The bottleneck is the stage with the highest ρ: the first to saturate as load grows in the same mix, and so
where the pipeline saturates: at λ / ρ of that stage. Waking a run is not a throughput stage (a woken run
stays awake for its type's next batches) but a fixed delay, measured as the emitted→started latency.
"""

from __future__ import annotations

from dataclasses import dataclass

GATEWAY = "gateway"
STORE = "store"
WORKER = "worker"


@dataclass(frozen=True)
class GatewayUsage:
    """The gateway's own counts and CPU over the window, from its samples."""

    cpu_seconds: float
    wall_seconds: float
    deliveries: int
    """Deliveries answered, whatever the answer."""
    offered_events: int
    """Events offered: those accepted and quarantined (read), plus one per delivery refused before it was read."""
    accepted_deliveries: int
    accepted_events: int


@dataclass(frozen=True)
class Stage:
    """One stage's capacity and load in events per second, and its utilisation ρ = load / capacity."""

    name: str
    capacity: float | None
    load: float
    utilisation: float | None
    basis: str
    """How the capacity was measured, in a few words."""


def gateway_stage(usage: GatewayUsage | None, seconds: float) -> Stage | None:
    """The gateway's stage; None without its samples or with no delivery answered."""
    if usage is None or usage.deliveries == 0 or usage.cpu_seconds <= 0 or usage.wall_seconds <= 0:
        return None
    per_delivery = usage.accepted_events / usage.accepted_deliveries if usage.accepted_deliveries else 1.0
    capacity = usage.deliveries / usage.cpu_seconds * per_delivery
    load = usage.offered_events / seconds
    return Stage(
        name=GATEWAY,
        capacity=capacity,
        load=load,
        utilisation=load / capacity,
        basis=f"{usage.deliveries:,} deliveries per {usage.cpu_seconds:.3g} CPU-s",
    )


def worker_stage(event_type: str, completions: int, busy_seconds: float, arrival_rate: float) -> Stage | None:
    """A type's worker stage; None when no step of it stored in the window."""
    if busy_seconds <= 0 or completions <= 0:
        return None
    capacity = completions / busy_seconds
    return Stage(
        name=f"{WORKER}/{event_type}",
        capacity=capacity,
        load=arrival_rate,
        utilisation=arrival_rate / capacity,
        basis=f"{completions:,} stored in {busy_seconds:.3g} s of steps",
    )


def store_stage(completions: int, busy_seconds: float, arrival_rate: float, seconds: float) -> Stage | None:
    """The store's stage over every type; None when nothing was stored in the window."""
    if busy_seconds <= 0 or completions <= 0:
        return None
    capacity = completions / busy_seconds
    return Stage(
        name=STORE,
        capacity=capacity,
        load=arrival_rate,
        utilisation=max(arrival_rate / capacity, busy_seconds / seconds),
        basis=f"one writer at a time: {busy_seconds:.3g} s of steps in {seconds:.3g} s",
    )


def bottleneck(stages: list[Stage]) -> Stage | None:
    """The stage with the highest utilisation (None when no stage was measured)."""
    measured = [s for s in stages if s.utilisation is not None]
    return max(measured, key=lambda s: s.utilisation or 0.0) if measured else None


def saturation_rate(stage: Stage, arrival_rate: float) -> float | None:
    """The overall λ at which `stage` reaches ρ = 1 with today's mix of types and deliveries."""
    if not stage.utilisation or stage.utilisation <= 0:
        return None
    return arrival_rate / stage.utilisation
