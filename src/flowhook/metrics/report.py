"""The report's figures for one window, derived from what the store counted (no I/O here).

The store aggregates per-event timestamps in DuckDB (`flowhook.reporting`); this module turns those
totals into rates, utilisation, Little's law and the capacity forecast, so every definition sits in
one place and is tested without a database.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from flowhook.audit import Audit
from flowhook.metrics.capacity import (
    GatewayUsage,
    Stage,
    StepSample,
    bottleneck,
    gateway_stage,
    handler_stage,
    saturation_rate,
    store_stage,
)
from flowhook.metrics.little import BacklogSample, LittleCheck, little_check
from flowhook.metrics.queueing import Forecast, forecast, sojourn_quantile
from flowhook.names import ALL_TYPES
from flowhook.worker.watchdog import Heartbeat

OVERALL = ALL_TYPES
"""The event_type of the row that aggregates every type; it is always the last row."""

STAGES: dict[str, str] = {
    "sent": "occurred→received",
    "batched": "received→emitted",
    "woken": "emitted→started",
    "processed": "started→stored",
    "latency": "received→stored",
    "end_to_end": "occurred→stored",
}
"""Measured latency stages, each from one per-event timestamp to the next (`latency` is the sum inside flowhook)."""

MAX_BUCKETS = 10_000
"""A window cut into more buckets than this is refused: the tables would be unreadable anyway."""


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile, interpolating linearly between closest ranks (numpy default, DuckDB quantile_cont)."""
    if not values:
        raise ValueError("percentile of an empty sequence")
    if not 0.0 <= q <= 1.0:  # also rejects NaN
        raise ValueError(f"q must be within [0, 1], got {q!r}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


@dataclass(frozen=True)
class LatencyStats:
    """Summary of a latency sample in seconds; measured, not modelled."""

    count: int
    mean: float
    p50: float
    p95: float
    p99: float
    max: float


def latency_stats(values: Iterable[float]) -> LatencyStats | None:
    """Count, mean, p50/p95/p99 and max of the sample, or None when it is empty (no latency to speak of)."""
    ordered = sorted(values)
    if not ordered:
        return None
    return LatencyStats(
        count=len(ordered),
        mean=math.fsum(ordered) / len(ordered),
        p50=percentile(ordered, 0.50),
        p95=percentile(ordered, 0.95),
        p99=percentile(ordered, 0.99),
        max=ordered[-1],
    )


def _aware_utc(name: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {value!r}")
    return value.astimezone(UTC)


@dataclass(frozen=True)
class Window:
    """The half-open span [start, end) a report covers, cut into buckets of `bucket_seconds` from start."""

    start: datetime
    end: datetime
    bucket_seconds: float = 60.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _aware_utc("window start", self.start))
        object.__setattr__(self, "end", _aware_utc("window end", self.end))
        if self.end <= self.start:
            raise ValueError(f"the window ends ({self.end.isoformat()}) before it starts ({self.start.isoformat()})")
        if not self.bucket_seconds > 0:
            raise ValueError(f"bucket seconds must be positive, got {self.bucket_seconds!r}")
        if self.bucket_count > MAX_BUCKETS:
            raise ValueError(
                f"{self.bucket_count} buckets of {self.bucket_seconds:g} s in a {self.seconds:g} s window: "
                f"at most {MAX_BUCKETS}; use longer buckets"
            )

    @classmethod
    def last(cls, minutes: float, *, now: datetime | None = None, bucket_seconds: float = 60.0) -> Window:
        """The last `minutes` minutes up to `now`."""
        end = now or datetime.now(UTC)
        return cls(end - timedelta(minutes=minutes), end, bucket_seconds)

    @property
    def seconds(self) -> float:
        """T: every rate in the report is a count over this."""
        return (self.end - self.start).total_seconds()

    @property
    def bucket_count(self) -> int:
        return max(1, math.ceil(self.seconds / self.bucket_seconds - 1e-9))


@dataclass(frozen=True)
class TypeTotals:
    """What the store counted for one event type (or OVERALL) in a window; the report derives the rest.

    arrivals: received in the window; completions: stored in it (failed ones included, counted apart);
    in_flight: arrivals not stored by the window's end; backlog_start/backlog_end: events in the
    system (received, not stored) at the window's edges; backlog_seconds: ∫ backlog dt over the window;
    sojourn_seconds: Σ time in system of the arrivals (up to the report's time for those in flight);
    busy_seconds: worker time of the steps (started→stored) that stored in the window, and steps/workers
    how many steps and distinct flow runs those were; skewed: events whose `occurred` is after their
    `received` (the sender's clock is ahead), by up to max_skew_seconds.
    """

    event_type: str
    arrivals: int = 0
    completions: int = 0
    failed: int = 0
    in_flight: int = 0
    backlog_start: int = 0
    backlog_end: int = 0
    backlog_seconds: float = 0.0
    sojourn_seconds: float = 0.0
    busy_seconds: float = 0.0
    steps: int = 0
    workers: int = 0
    skewed: int = 0
    max_skew_seconds: float = 0.0
    stages: Mapping[str, LatencyStats | None] = field(default_factory=dict)


@dataclass(frozen=True)
class BucketTotals:
    """One bucket of one type: arrivals and completions in it, backlog at its end, latency of its completions."""

    event_type: str
    start: datetime
    seconds: float
    arrivals: int
    completions: int
    backlog: int
    latency: LatencyStats | None
    offered: int = 0
    """Deliveries answered in the bucket, whatever the answer (from the gateway's counts; 0 without them)."""
    refused: int = 0
    """Of those, the ones not accepted: refused, quarantined or timed out."""

    @property
    def arrival_rate(self) -> float:
        return self.arrivals / self.seconds

    @property
    def processing_rate(self) -> float:
        return self.completions / self.seconds


@dataclass(frozen=True)
class IngressCount:
    """Deliveries with one outcome in the window: accepted (202), refused by status, quarantined (422) or timed
    out (408); `events` is how many they held where the gateway read them (accepted and quarantined ones)."""

    source: str
    event_type: str
    status: int
    code: str
    outcome: str
    deliveries: int
    events: int


@dataclass(frozen=True)
class TypeReport:
    """One row of the report: the store's totals for a type (or "all") and what follows from them over T.

    λ = arrivals/T; μ = completions/T; θ = min(λ, μ); τ = 1/θ (the seed's model; None when θ == 0);
    peak λ: the busiest full bucket's arrivals per second;
    capacity = completions per busy worker-second; ρ = λ/capacity (the share of one worker's time the
    arrivals need; above 1 one worker cannot keep up).
    """

    totals: TypeTotals
    seconds: float
    peak_arrival_rate: float
    little: LittleCheck | None
    forecast: Forecast | None

    @property
    def event_type(self) -> str:
        return self.totals.event_type

    @property
    def arrival_rate(self) -> float:
        return self.totals.arrivals / self.seconds

    @property
    def processing_rate(self) -> float:
        return self.totals.completions / self.seconds

    @property
    def throughput(self) -> float:
        return min(self.arrival_rate, self.processing_rate)

    @property
    def tau_seconds(self) -> float | None:
        return 1.0 / self.throughput if self.throughput > 0 else None

    @property
    def capacity(self) -> float | None:
        """μ as capacity: events stored per second of worker time busy handling and storing them."""
        if self.totals.busy_seconds <= 0:
            return None
        return self.totals.completions / self.totals.busy_seconds

    @property
    def utilisation(self) -> float | None:
        capacity = self.capacity
        return None if not capacity else self.arrival_rate / capacity

    @property
    def latency(self) -> LatencyStats | None:
        return self.totals.stages.get("latency")


@dataclass(frozen=True)
class Report:
    """Everything measured for one window: a row per event type sorted by name, then the "all" row, and the buckets;
    and the trigger path's heartbeat at report time and the latest audit, when they were checked."""

    report_id: str
    generated_at: datetime
    window: Window
    target_p99_seconds: float
    rows: list[TypeReport]
    buckets: list[BucketTotals]
    heartbeat: Heartbeat | None = None
    audit: Audit | None = None
    """The store's latest audit against the spool's done batches, when one was read."""
    sampled: bool = False
    """Whether the gateway's samples of its queue cover any of the window (else Little's law is not checked)."""
    ingress: list[IngressCount] = field(default_factory=list)
    """Every delivery's outcome in the window, per source, type, status and code: what was offered."""
    stages: list[Stage] = field(default_factory=list)
    """Capacity, load and utilisation of each stage that was measured (`metrics.capacity`)."""
    cpus: int | None = None
    """CPUs of the machine the report ran on (local mode: the stack's)."""

    @property
    def bottleneck(self) -> Stage | None:
        """The stage with the highest utilisation: where the pipeline saturates first."""
        return bottleneck(self.stages, self.rows[-1].arrival_rate)

    @property
    def saturation_rate(self) -> float | None:
        """The overall λ at which the bottleneck reaches ρ = 1, with today's mix."""
        stage = self.bottleneck
        return None if stage is None else saturation_rate(stage, self.rows[-1].arrival_rate)

    def row(self, event_type: str) -> TypeReport:
        for row in self.rows:
            if row.event_type == event_type:
                return row
        raise KeyError(event_type)

    @property
    def clock_skew(self) -> TypeTotals | None:
        """The "all" totals when some sender's clock ran ahead of flowhook's, else None."""
        overall = self.rows[-1].totals
        return overall if overall.skewed else None


def build_report(
    totals: Sequence[TypeTotals],
    buckets: Sequence[BucketTotals],
    *,
    window: Window,
    generated_at: datetime,
    report_id: str,
    target_p99_seconds: float,
    heartbeat: Heartbeat | None = None,
    audit: Audit | None = None,
    samples: Mapping[str, BacklogSample] | None = None,
    ingress: Sequence[IngressCount] = (),
    gateway: GatewayUsage | None = None,
    steps: Sequence[StepSample] = (),
    cpus: int | None = None,
) -> Report:
    """Derive every figure from the store's totals (an OVERALL entry among them; an empty one stands in if not).

    `samples`: per type (and OVERALL) what the gateway's samples and the timestamps say over the time it
    watched; None when no sample covers the window. `ingress`: the window's delivery outcomes. `gateway`: its
    CPU and answers, for its stage's capacity.
    """
    by_type = {t.event_type: t for t in totals}
    overall = by_type.pop(OVERALL, TypeTotals(OVERALL))
    peaks: dict[str, float] = {}
    # A short last bucket is left out (one event in its last second would read as a peak), unless it is all there is.
    full = [b for b in buckets if b.seconds >= window.bucket_seconds - 1e-9] or list(buckets)
    for bucket in full:
        peaks[bucket.event_type] = max(peaks.get(bucket.event_type, 0.0), bucket.arrival_rate)
    rows = []
    for name in [*sorted(by_type), OVERALL]:
        type_totals = overall if name == OVERALL else by_type[name]
        rows.append(
            TypeReport(
                totals=type_totals,
                seconds=window.seconds,
                peak_arrival_rate=peaks.get(name, 0.0),
                little=None if samples is None else little_check(samples.get(name), type_totals.backlog_seconds),
                # One awake run serves a type at a time, so a type's forecast starts from one worker; the
                # "all" row mixes types with different handlers and gets none.
                forecast=None if name == OVERALL else _forecast(type_totals, window.seconds, target_p99_seconds),
            )
        )
    return Report(
        report_id=report_id,
        generated_at=_aware_utc("generated_at", generated_at),
        window=window,
        target_p99_seconds=target_p99_seconds,
        rows=rows,
        buckets=sorted(buckets, key=lambda b: (b.event_type == OVERALL, b.event_type, b.start)),
        heartbeat=heartbeat,
        audit=audit,
        sampled=samples is not None,
        ingress=sorted(ingress, key=lambda c: (c.source, c.event_type, c.status, c.code)),
        stages=_stages(rows, gateway, steps, window.seconds),
        cpus=cpus,
    )


def _stages(
    rows: Sequence[TypeReport], gateway: GatewayUsage | None, steps: Sequence[StepSample], seconds: float
) -> list[Stage]:
    """Every stage measured in the window: the gateway, each type's handlers, the store."""
    found = [gateway_stage(gateway, seconds)]
    found += [
        handler_stage(r.event_type, [s for s in steps if s.event_type == r.event_type], r.arrival_rate)
        for r in rows
        if r.event_type != OVERALL
    ]
    found.append(store_stage(list(steps), rows[-1].arrival_rate, seconds))
    return [stage for stage in found if stage is not None]


def _forecast(totals: TypeTotals, seconds: float, target: float) -> Forecast | None:
    """The M/M/1 forecast from the type's capacity, with a fixed delay d calibrated on the window.

    d is the measured p50 less the model's own p50 at the observed load (never below 0): the part of
    the latency queueing does not explain, i.e. batching and waking a run.
    """
    latency = totals.stages.get("latency")
    if totals.busy_seconds <= 0 or not totals.completions or latency is None:
        return None
    arrival_rate = totals.arrivals / seconds
    capacity = totals.completions / totals.busy_seconds
    model_p50 = sojourn_quantile(arrival_rate, capacity, 1, 0.5)
    return forecast(
        arrival_rate,
        capacity,
        servers=1,
        fixed_delay=max(0.0, latency.p50 - model_p50) if math.isfinite(model_p50) else 0.0,
        target_seconds=target,
    )
