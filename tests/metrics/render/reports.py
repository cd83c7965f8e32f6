"""Reports for the renderers' tests, built by hand from totals so every figure in them can be checked by hand."""

from __future__ import annotations

import dataclasses
import io
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console

from flowhook.metrics.little import BacklogSample
from flowhook.metrics.render import to_rich
from flowhook.metrics.report import OVERALL, BucketTotals, LatencyStats, Report, TypeTotals, Window, build_report
from flowhook.worker.watchdog import check_heartbeat

T0 = datetime(2025, 1, 1, tzinfo=UTC)
LN2 = math.log(2)
LN100 = math.log(100)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def latency_of(count: int, mean: float, p50: float, p95: float, p99: float, top: float) -> LatencyStats:
    return LatencyStats(count=count, mean=mean, p50=p50, p95=p95, p99=p99, max=top)


def bucket_run(event_type: str, arrivals: list[int], seconds: float) -> list[BucketTotals]:
    """Consecutive buckets from T0, one per entry of `arrivals`, each storing one event fewer than arrived."""
    return [
        BucketTotals(
            event_type,
            at(k * seconds),
            seconds,
            arrivals=n,
            completions=max(0, n - 1),
            backlog=k,
            latency=latency_of(max(0, n - 1), 0.5, 0.4, 0.9, 1.1, 1.2) if n > 1 else None,
        )
        for k, n in enumerate(arrivals)
    ]


def build(
    totals: list[TypeTotals],
    buckets: list[BucketTotals],
    *,
    seconds: float,
    bucket_seconds: float,
    target: float = 10.0,
) -> Report:
    return build_report(
        totals,
        buckets,
        window=Window(T0, at(seconds), bucket_seconds),
        generated_at=at(seconds + 5),
        report_id="r-1",
        target_p99_seconds=target,
        samples=samples_of(totals, seconds),
    )


def samples_of(totals: list[TypeTotals], seconds: float) -> dict[str, BacklogSample]:
    """Samples that watched the whole window: the timestamps' count is `backlog_seconds`, the spool's (sampled)
    is `sojourn_seconds`, so a fixture sets a Little gap with the two."""
    return {
        t.event_type: BacklogSample(
            sampled_seconds=t.sojourn_seconds,
            counted_seconds=t.backlog_seconds,
            changes=2 * t.arrivals,
            watched_seconds=seconds,
            period_seconds=0.1,
        )
        for t in totals
    }


def sample_report() -> Report:
    """Two types over T = 60 s in 20 s buckets, with every warning the report can give.

    order.created: λ = 30/60 = 0.5, μ = 24/60 = 0.4, capacity = 24/4 = 6, ρ = 0.5/6; L = 30/60 = 0.5 = λW (W = 1).
    payment.settled: λ = μ = 20/60; no worker time; L = 40/60 against λW = 1/3: gap 50%.
    all: λ = 50/60, μ = 44/60, capacity 44/4 = 11; L = 70/60 against λW = 50/60: gap 20/70; 3 skewed events.
    """
    totals = [
        TypeTotals(
            "payment.settled",
            arrivals=20,
            completions=20,
            backlog_seconds=40.0,
            sojourn_seconds=20.0,
            stages={"sent": None, "latency": latency_of(20, 1.0, 1.0, 1.0, 1.0, 1.0)},
        ),
        TypeTotals(
            "order.created",
            arrivals=30,
            completions=24,
            failed=1,
            in_flight=6,
            backlog_start=0,
            backlog_end=6,
            backlog_seconds=30.0,
            sojourn_seconds=30.0,
            busy_seconds=4.0,
            steps=3,
            workers=1,
            stages={
                "sent": None,
                "batched": latency_of(24, 0.3, 0.25, 0.5, 0.6, 0.7),
                "latency": latency_of(24, 0.9, 0.8, 1.5, 1.9, 2.0),
            },
        ),
        TypeTotals(
            OVERALL,
            arrivals=50,
            completions=44,
            failed=1,
            in_flight=6,
            backlog_end=6,
            backlog_seconds=70.0,
            sojourn_seconds=50.0,
            busy_seconds=4.0,
            steps=3,
            workers=1,
            skewed=3,
            max_skew_seconds=1.25,
            stages={"latency": latency_of(44, 0.95, 0.9, 1.5, 1.9, 2.0)},
        ),
    ]
    buckets = [
        *bucket_run(OVERALL, [15, 19, 16], 20),
        *bucket_run("payment.settled", [5, 5, 10], 20),
        *bucket_run("order.created", [10, 14, 6], 20),
    ]
    return build(totals, buckets, seconds=60, bucket_seconds=20)


def unstable_report() -> Report:
    """λ = 600/10 s = 60/s against a capacity of 400/8 = 50/s: the forecast p99 is infinite."""
    latency = latency_of(400, 1.0, 1.0, 2.0, 3.0, 4.0)
    totals = [
        TypeTotals("hot", arrivals=600, completions=400, in_flight=200, busy_seconds=8.0, stages={"latency": latency}),
        TypeTotals(
            OVERALL, arrivals=600, completions=400, in_flight=200, busy_seconds=8.0, stages={"latency": latency}
        ),
    ]
    return build(totals, [], seconds=10, bucket_seconds=10)


def empty_report() -> Report:
    return build([], [], seconds=60, bucket_seconds=60)


def one_event_report() -> Report:
    """One event received at 10 s and stored 0.2 s later, 0.05 s of it worker time, in a 60 s window."""
    latency = latency_of(1, 0.2, 0.2, 0.2, 0.2, 0.2)
    totals = [
        TypeTotals(
            name,
            arrivals=1,
            completions=1,
            backlog_seconds=0.2,
            sojourn_seconds=0.2,
            busy_seconds=0.05,
            steps=1,
            workers=1,
            stages={"latency": latency},
        )
        for name in ("solo", OVERALL)
    ]
    buckets = [
        BucketTotals(name, T0, 60.0, arrivals=1, completions=1, backlog=0, latency=latency)
        for name in ("solo", OVERALL)
    ]
    return build(totals, buckets, seconds=60, bucket_seconds=60)


def md_table(markdown: str, heading: str) -> list[list[str]]:
    """The cells of the body rows of the first table after `heading`."""
    section = markdown.split(heading, 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.split("|")[1:-1]] for line in lines[2:]]


def rich_text(report: Report, *, width: int = 250, **kwargs: Any) -> str:
    console = Console(record=True, width=width, file=io.StringIO())
    console.print(to_rich(report, **kwargs))
    return console.export_text()


def with_heartbeat(stored_ago: float | None) -> Report:
    report = one_event_report()
    last = None if stored_ago is None else (at(60 - stored_ago - 2), at(60 - stored_ago))
    beat = check_heartbeat(last, now=at(60), max_age_seconds=660)
    return dataclasses.replace(report, heartbeat=beat)


REALISTIC_TYPES = ("data_update", "scheduled_tick", "user_request")
REALISTIC_START = datetime(2025, 3, 14, 9, 26, 53, 589793, tzinfo=UTC)
"""A start with microseconds, as `--minutes` gives: the terminal must not print them."""


def _stages(count: int, latency: float) -> dict[str, LatencyStats | None]:
    """Every stage, from microseconds (handling) to seconds (waking a run)."""

    def spread(p50: float) -> LatencyStats:
        return latency_of(count, 1.1 * p50, p50, 1.9 * p50, 2.4 * p50, 3.0 * p50)

    return {
        "sent": spread(0.012),
        "batched": spread(0.21),
        "woken": spread(6.8),
        "processed": spread(0.0000361),
        "latency": spread(latency),
        "end_to_end": spread(latency + 0.012),
    }


def realistic_report(hours: float = 1.0) -> Report:
    """An hour (by default) of three types with long names: 85,320 user requests at 23.7/s against a capacity of
    ~27,700/s (ρ ≈ 8.6e-4), a dozen ticks at ρ ≈ 1.1e-7, five data updates; every stage, from µs to s; buckets of
    60 s with a full latency spread; a skewed clock and an unhealthy trigger path for long warnings."""
    seconds = hours * 3600

    def totals(name: str, n: int, busy: float, latency: float, **extra: Any) -> TypeTotals:
        return TypeTotals(
            name,
            arrivals=n,
            completions=n - extra.get("in_flight", 0),
            busy_seconds=busy,
            steps=max(1, n // 100),
            workers=1,
            backlog_seconds=n * latency,
            sojourn_seconds=n * latency,
            stages=_stages(n, latency),
            **extra,
        )

    rows = [
        totals("data_update", 5, 0.0009, 0.851),
        totals("scheduled_tick", 12, 0.0004, 7.2),
        totals("user_request", 85_320, 3.08, 0.436, failed=3, in_flight=10, backlog_end=10),
        totals(OVERALL, 85_337, 3.0813, 0.44, failed=3, in_flight=10, backlog_end=10, skewed=2, max_skew_seconds=1.5),
    ]
    buckets = [
        BucketTotals(
            name,
            REALISTIC_START + timedelta(seconds=60 * k),
            60.0,
            arrivals=n + k,
            completions=n + k - 1,
            backlog=k % 3,
            latency=latency_of(n + k - 1, 0.48, 0.436, 0.828, 1.046, 1.308),
        )
        for name, n in ((OVERALL, 1422), ("user_request", 1420))
        for k in range(int(seconds // 60))
    ]
    report = build_report(
        rows,
        buckets,
        window=Window(REALISTIC_START, REALISTIC_START + timedelta(seconds=seconds), 60.0),
        generated_at=REALISTIC_START + timedelta(seconds=seconds + 0.5),
        report_id="6f1c2a9e-3b1d-4c8e-9a57-0d2b7e4f9c31",
        target_p99_seconds=30.0,
        samples=samples_of(rows, seconds),
    )
    beat = check_heartbeat(None, now=report.generated_at, max_age_seconds=660, up_since=REALISTIC_START)
    return dataclasses.replace(report, heartbeat=beat)
