"""Rates and latency percentiles for one reporting window (the renderers are in `render`)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

EventTimes = tuple[str, datetime, datetime, datetime | None]
"""(event_type, occurred, received, stored) as aware UTC datetimes; stored is None while in flight."""

OVERALL = "all"
"""The event_type of the row that aggregates every type; it is always the last row."""


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile, interpolating linearly between closest ranks (numpy default, DuckDB quantile_cont)."""
    if not values:
        raise ValueError("percentile of an empty sequence")
    if not 0.0 <= q <= 1.0:  # also rejects NaN
        raise ValueError(f"q must be within [0, 1], got {q!r}")
    return _percentile_sorted(sorted(values), q)


def _percentile_sorted(ordered: Sequence[float], q: float) -> float:
    position = (len(ordered) - 1) * q
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    fraction = position - lower
    return ordered[lower] + (ordered[upper] - ordered[lower]) * fraction


@dataclass(frozen=True)
class LatencyStats:
    """Summary of a latency sample in seconds; percentiles are measured, not modelled."""

    count: int
    p50: float
    p95: float
    p99: float
    max: float


def latency_stats(values: Iterable[float]) -> LatencyStats | None:
    """Count, p50/p95/p99 and max of the sample, or None when it is empty (no latency to speak of)."""
    ordered = sorted(values)
    if not ordered:
        return None
    return LatencyStats(
        count=len(ordered),
        p50=_percentile_sorted(ordered, 0.50),
        p95=_percentile_sorted(ordered, 0.95),
        p99=_percentile_sorted(ordered, 0.99),
        max=ordered[-1],
    )


@dataclass(frozen=True)
class TypeReport:
    """One row of the report: rates over the shared span T and latencies for one type (or "all").

    n: arrivals, events whose `received` lies in the window; m: completions, events whose `stored`
    lies in the window; arrival_rate λ = n/T; processing_rate μ = m/T; throughput θ = min(λ, μ);
    tau_seconds τ = 1/θ (the seed's simple model, None when θ == 0); in_flight: arrivals not yet
    stored at the window's end; latency: received→stored and end_to_end: occurred→stored, both over
    the completions.
    """

    event_type: str
    n: int
    m: int
    span_seconds: float
    arrival_rate: float
    processing_rate: float
    throughput: float
    tau_seconds: float | None
    in_flight: int
    latency: LatencyStats | None
    end_to_end: LatencyStats | None


@dataclass(frozen=True)
class Report:
    """Everything measured for one window: one row per event type sorted by name, then the "all" row."""

    report_id: str
    generated_at: datetime
    window_start: datetime
    window_end: datetime
    span_start: datetime | None
    span_end: datetime | None
    rows: list[TypeReport]

    @property
    def span_seconds(self) -> float:
        """T, the active span shared by every row (0.0 when nothing happened in the window)."""
        if self.span_start is None or self.span_end is None:
            return 0.0
        return (self.span_end - self.span_start).total_seconds()


@dataclass
class _Tally:
    n: int = 0
    m: int = 0
    in_flight: int = 0
    latency: list[float] = field(default_factory=list)
    end_to_end: list[float] = field(default_factory=list)

    def row(self, event_type: str, span_seconds: float) -> TypeReport:
        arrival = self.n / span_seconds if span_seconds > 0 else 0.0
        processing = self.m / span_seconds if span_seconds > 0 else 0.0
        throughput = min(arrival, processing)
        return TypeReport(
            event_type=event_type,
            n=self.n,
            m=self.m,
            span_seconds=span_seconds,
            arrival_rate=arrival,
            processing_rate=processing,
            throughput=throughput,
            tau_seconds=1.0 / throughput if throughput > 0 else None,
            in_flight=self.in_flight,
            latency=latency_stats(self.latency),
            end_to_end=latency_stats(self.end_to_end),
        )


def _aware_utc(name: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {value!r}")
    return value.astimezone(UTC)


def build_report(
    times: Iterable[EventTimes],
    *,
    window_start: datetime,
    window_end: datetime,
    generated_at: datetime,
    report_id: str,
) -> Report:
    """Rates and latencies for the half-open window [window_start, window_end).

    Arrivals are events received in the window, completions events stored in it (an event received
    earlier but stored inside counts as a completion only). T is the active span inside the window:
    from the earliest `received` of those events to the latest `stored` (or `received`, if later),
    clipped to the window; an event received before the window and stored inside it starts the span
    at window_start, because the system was already busy then. Every row shares T, so rates add up
    across types. With no events or T == 0 the rates are 0.0 and τ is None.
    """
    start = _aware_utc("window_start", window_start)
    end = _aware_utc("window_end", window_end)
    if end < start:
        raise ValueError(f"window_end {window_end!r} is before window_start {window_start!r}")
    tallies: dict[str, _Tally] = {}
    overall = _Tally()
    first: datetime | None = None
    last: datetime | None = None
    for event_type, occurred, received, stored in times:
        arrived = start <= received < end
        completed = stored is not None and start <= stored < end
        if not (arrived or completed):
            continue
        tally = tallies.setdefault(event_type, _Tally())
        first = received if first is None else min(first, received)
        latest = stored if completed and stored is not None else received
        last = latest if last is None else max(last, latest)
        for t in (tally, overall):
            if arrived:
                t.n += 1
                if not completed:  # stored is None, or only after the window closed
                    t.in_flight += 1
            if completed and stored is not None:
                t.m += 1
                t.latency.append((stored - received).total_seconds())
                t.end_to_end.append((stored - occurred).total_seconds())
    span_start = None if first is None else max(start, first)
    span_end = None if last is None else min(end, last)
    span = 0.0 if span_start is None or span_end is None else (span_end - span_start).total_seconds()
    rows = [tallies[name].row(name, span) for name in sorted(tallies)]
    rows.append(overall.row(OVERALL, span))
    return Report(
        report_id=report_id,
        generated_at=_aware_utc("generated_at", generated_at),
        window_start=start,
        window_end=end,
        span_start=span_start,
        span_end=span_end,
        rows=rows,
    )
