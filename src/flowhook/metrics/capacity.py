"""Capacity per stage, and the stage that limits the pipeline: measured from the stack's own figures.

An event passes three stages that can run out of capacity, each measured in the window:

- gateway: one process (one core, by the GIL) that verifies, validates and fsyncs each delivery. Its
  capacity is the deliveries it answered per CPU-second it used, in events (× events per accepted delivery);
  its load, the events offered (accepted, refused, quarantined or timed out). Its idle work (sampling, timers)
  counts against it, so at low load the capacity is underestimated: on the safe side.
- worker/<type>: a type's handlers, in its awake run. Capacity: events handled per second of handler time
  (started→handled); load: the type's λ.
- store: the DuckDB file, which one writer holds at a time, so every type's writes (handled→stored) queue
  for it. Its cost per write is fitted as a + b·events; see `store_stage`.

The bottleneck is the stage that saturates first as load grows in today's mix, and the pipeline saturates
where it does. Waking a run is not a throughput stage (a woken run
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
    saturates_at: float | None = None
    """The stage's own load at which it saturates, where that is not simply its capacity (the store's)."""


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


@dataclass(frozen=True)
class StepSample:
    """One step of a worker run: how many events it stored, how long its handlers took, how long its write took."""

    event_type: str
    events: int
    handle_seconds: float
    write_seconds: float


def handler_stage(event_type: str, steps: list[StepSample], arrival_rate: float) -> Stage | None:
    """A type's handlers: events per second of handler time; None when its handlers took no measurable time."""
    events = sum(s.events for s in steps)
    seconds = sum(s.handle_seconds for s in steps)
    if events <= 0 or seconds <= 0:
        return None
    capacity = events / seconds
    return Stage(
        name=f"{WORKER}/{event_type}",
        capacity=capacity,
        load=arrival_rate,
        utilisation=arrival_rate / capacity,
        basis=f"{events:,} handled in {seconds:.3g} s",
    )


MIN_STEPS = 10
"""Fewer writes than this fit no line worth trusting."""


def write_cost(steps: list[StepSample]) -> tuple[float, float] | None:
    """(a, b): a step's write takes about a + b·n seconds for n events, by least squares over the steps; None
    when the steps cannot say (too few, all of one size, or a slope lost in the noise: its standard error over
    half of it). At low load batches are small and writes are mostly their fixed cost, so b is often unknown."""
    if len(steps) < MIN_STEPS:
        return None
    n = [float(s.events) for s in steps]
    d = [s.write_seconds for s in steps]
    mean_n, mean_d = sum(n) / len(n), sum(d) / len(d)
    spread = sum((x - mean_n) ** 2 for x in n)
    if spread <= 0:
        return None
    b = sum((x - mean_n) * (y - mean_d) for x, y in zip(n, d, strict=True)) / spread
    a = mean_d - b * mean_n
    residual = sum((y - a - b * x) ** 2 for x, y in zip(n, d, strict=True)) / (len(n) - 2)
    if b <= 0 or a < 0 or (residual / spread) ** 0.5 > b / 2:
        return None
    return a, b


def store_stage(steps: list[StepSample], arrival_rate: float, seconds: float) -> Stage | None:
    """The store's stage over every type's writes, one writer at a time; None when nothing was written.

    ρ is the share of the window spent writing. As load grows, batches grow but steps do not come much more often
    (each type's run takes every waiting batch in one step), so a write's fixed cost a is paid as often as now and
    its cost per event b sets the capacity: the store saturates at λ = (1 − a·steps/T) / b. Without a trustworthy
    fit (see `write_cost`) its capacity is left unknown, not guessed.
    """
    busy = sum(s.write_seconds for s in steps)
    if busy <= 0:
        return None
    cost = write_cost(steps)
    if cost is None:
        return Stage(
            name=STORE,
            capacity=None,
            load=arrival_rate,
            utilisation=busy / seconds,
            basis=f"{len(steps):,} writes, {busy:.3g} s: too few or too alike to fit a cost per event",
        )
    a, b = cost
    rate = len(steps) / seconds
    return Stage(
        name=STORE,
        capacity=1.0 / b,
        load=arrival_rate,
        utilisation=busy / seconds,
        basis=f"{len(steps):,} writes: {a * 1e3:.3g} ms + {b * 1e6:.3g} µs per event",
        saturates_at=max(0.0, 1.0 - a * rate) / b,
    )


def saturation_rate(stage: Stage, arrival_rate: float) -> float | None:
    """The overall λ at which `stage` saturates with today's mix (its load scales with λ)."""
    if stage.load <= 0 or arrival_rate <= 0:
        return None
    limit = stage.saturates_at if stage.saturates_at is not None else stage.capacity
    return None if limit is None else limit * arrival_rate / stage.load


def bottleneck(stages: list[Stage], arrival_rate: float) -> Stage | None:
    """The stage that saturates first as the load grows in today's mix (None when no stage was measured)."""
    rated = [(rate, s) for s in stages if (rate := saturation_rate(s, arrival_rate)) is not None]
    return min(rated, key=lambda item: item[0])[1] if rated else None
