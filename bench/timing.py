"""Latency helpers the benchmark's phases share: seconds between times, percentiles, per-stage stats."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flowhook.metrics import latency_stats

STAGES = (("received", "emitted"), ("emitted", "started"), ("started", "stored"), ("received", "stored"))
STAGE_NAMES = ("received→emitted", "emitted→started", "started→stored", "received→stored")


def seconds(a: Any, b: Any) -> float:
    return float((b - a).total_seconds())


def stats(values: list[float]) -> dict[str, float] | None:
    s = latency_stats(values)
    return None if s is None else {"p50": s.p50, "p95": s.p95, "p99": s.p99, "max": s.max, "count": s.count}


def run_end(run: dict[str, Any]) -> datetime | None:
    end = run.get("end_time")
    return None if end is None else datetime.fromisoformat(end)


def run_start(run: dict[str, Any]) -> datetime | None:
    start = run.get("start_time")
    return None if start is None else datetime.fromisoformat(start)


def stage_stats(rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    """Per stage, the stats of rows (id, received, emitted, started, stored, ...)."""
    column = {"received": 1, "emitted": 2, "started": 3, "stored": 4}
    out = {}
    for (a, b), name in zip(STAGES, STAGE_NAMES, strict=True):
        values = [seconds(r[column[a]], r[column[b]]) for r in rows if r[column[a]] and r[column[b]]]
        out[name] = stats(values)
    return out
