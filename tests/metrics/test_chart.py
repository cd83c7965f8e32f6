"""The report chart, drawn for real with matplotlib: a valid 1000×700 PNG for busy, empty and degenerate reports."""

from __future__ import annotations

import struct
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flowhook.metrics.chart import render_chart
from flowhook.metrics.report import (
    OVERALL,
    BucketTotals,
    LatencyStats,
    Report,
    TypeTotals,
    Window,
    build_report,
    latency_stats,
)

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(path: Path) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which a valid PNG has right after its signature."""
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _assert_chart(path: Path) -> None:
    assert path.stat().st_size > 5_000
    assert _png_size(path) == (1000, 700)
    assert not path.with_suffix(".tmp.png").exists()


def _report(
    totals: list[TypeTotals], buckets: list[BucketTotals], *, minutes: float = 30, bucket_seconds: float = 60
) -> Report:
    return build_report(
        totals,
        buckets,
        window=Window(T0, T0 + timedelta(minutes=minutes), bucket_seconds),
        generated_at=T0 + timedelta(minutes=minutes, seconds=5),
        report_id="0123456789abcdef",
        target_p99_seconds=10.0,
    )


def _busy(types: tuple[str, ...] = ("order.created", "payment.settled"), count: int = 30) -> Report:
    """`count` one-minute buckets per type with a burst in the middle; every fifth bucket stores nothing."""
    buckets: list[BucketTotals] = []
    totals: list[TypeTotals] = []
    for start_index in range(count):
        start = T0 + timedelta(seconds=60 * start_index)
        per_type = []
        for k, event_type in enumerate(types):
            arrivals = 60 * (k + 1) + (600 if 10 <= start_index < 14 else 0)
            completions = 0 if start_index % 5 == 4 else arrivals - 5
            latency = None if not completions else latency_stats([0.05 * (k + 1) + 0.01 * j for j in range(50)])
            per_type.append(BucketTotals(event_type, start, 60.0, arrivals, completions, 5 * start_index, latency))
        buckets.extend(per_type)
        overall_latency = [b.latency for b in per_type if b.latency]
        buckets.append(
            BucketTotals(
                OVERALL,
                start,
                60.0,
                sum(b.arrivals for b in per_type),
                sum(b.completions for b in per_type),
                sum(b.backlog for b in per_type),
                max(overall_latency, key=lambda s: s.p99) if overall_latency else None,
            )
        )
    for event_type in [*types, OVERALL]:
        mine = [b for b in buckets if b.event_type == event_type]
        arrivals = sum(b.arrivals for b in mine)
        completions = sum(b.completions for b in mine)
        totals.append(
            TypeTotals(
                event_type,
                arrivals=arrivals,
                completions=completions,
                in_flight=arrivals - completions,
                backlog_end=arrivals - completions,
                busy_seconds=completions / 50.0,
                steps=count,
                workers=1,
            )
        )
    return _report(totals, buckets, minutes=count)


def _empty() -> Report:
    return _report([], [])


def _one_bucket_without_latency() -> Report:
    buckets = [
        BucketTotals("order.created", T0, 60.0, 3, 0, 3, None),
        BucketTotals(OVERALL, T0, 60.0, 3, 0, 3, None),
    ]
    totals = [TypeTotals("order.created", arrivals=3, in_flight=3), TypeTotals(OVERALL, arrivals=3, in_flight=3)]
    return _report(totals, buckets, minutes=1)


def _zeros() -> Report:
    buckets = [BucketTotals(OVERALL, T0 + timedelta(seconds=60 * i), 60.0, 0, 0, 0, None) for i in range(10)]
    return _report([TypeTotals(OVERALL)], buckets, minutes=10)


def _zero_latency() -> Report:
    zero = LatencyStats(count=1, mean=0.0, p50=0.0, p95=0.0, p99=0.0, max=0.0)
    buckets = [BucketTotals(OVERALL, T0 + timedelta(seconds=60 * i), 60.0, 1, 1, 0, zero) for i in range(10)]
    return _report([TypeTotals(OVERALL, arrivals=10, completions=10)], buckets, minutes=10)


def _wide_latency() -> Report:
    """Latency from milliseconds to minutes: the bottom panel goes logarithmic."""
    buckets = [
        BucketTotals(OVERALL, T0 + timedelta(seconds=60 * i), 60.0, 10, 10, i, latency_stats([0.001 * 10**i]))
        for i in range(6)
    ]
    return _report([TypeTotals(OVERALL, arrivals=60, completions=60)], buckets, minutes=6)


def _many_types() -> Report:
    """More types than get their own line."""
    return _busy(types=tuple(f"source{n}.event" for n in range(12)), count=5)


@pytest.mark.parametrize(
    "make",
    [_busy, _empty, _one_bucket_without_latency, _zeros, _zero_latency, _wide_latency, _many_types],
    ids=lambda make: make.__name__.strip("_"),
)
def test_writes_a_1000_by_700_png(make: Callable[[], Report], tmp_path: Path) -> None:
    path = tmp_path / "chart.png"
    assert render_chart(make(), path) == path
    _assert_chart(path)


def test_creates_parent_directories(tmp_path: Path) -> None:
    path = tmp_path / "reports" / "2025-01-01" / "chart.png"
    render_chart(_busy(), path)
    _assert_chart(path)


def test_rendering_twice_to_one_path_leaves_one_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "chart.png"
    report = _busy()
    render_chart(report, path)
    render_chart(report, path)
    _assert_chart(path)
    assert [p.name for p in tmp_path.iterdir()] == ["chart.png"]


def test_importing_the_module_does_not_import_matplotlib() -> None:
    """The CLI imports the chart module on every run; matplotlib (about a second) only loads to draw."""
    code = "import sys, flowhook.metrics.chart; assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
