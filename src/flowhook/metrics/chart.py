"""The report's chart: per-bucket arrivals against processing, backlog and latency, as one PNG.

matplotlib is imported inside `render_chart` only: importing it costs about a second, and the CLI
should pay that only when it draws.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from flowhook.metrics.report import OVERALL, BucketTotals, LatencyStats, Report

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FIGSIZE_INCHES = (10.0, 7.0)
DPI = 100
MAX_TYPE_LINES = 8
"""Per-type arrival lines are drawn only up to this many types; beyond it they are noise."""

LOG_SPAN = 100.0
"""The latency axis turns logarithmic when max/min of the plotted percentiles exceeds this."""

HEADROOM = 1.35
"""Each y axis reaches this much above its peak: flat lines stay off the frame and clear of the legend."""

_TYPE_COLOURS = (
    "tab:orange",
    "tab:purple",
    "tab:brown",
    "tab:pink",
    "tab:gray",
    "tab:olive",
    "tab:cyan",
    "goldenrod",
)
_PERCENTILES: tuple[tuple[str, str, Callable[[LatencyStats], float]], ...] = (
    ("p50", "tab:green", lambda s: s.p50),
    ("p95", "tab:orange", lambda s: s.p95),
    ("p99", "tab:red", lambda s: s.p99),
)


def render_chart(report: Report, path: Path) -> Path:
    """Draw the report's buckets as a PNG at `path` (parents created); returns path.

    The PNG is written next to `path` and renamed over it, so a reader never sees half a file.
    """
    # The object-oriented API with an explicit Agg canvas needs no display, registers nothing with
    # pyplot (so repeated calls leak no figures) and leaves the process-wide backend alone.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=FIGSIZE_INCHES, dpi=DPI, layout="tight")
    FigureCanvasAgg(fig)
    _draw(fig, report)

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    try:
        fig.savefig(tmp, format="png", dpi=DPI)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _draw(fig: Figure, report: Report) -> None:
    from matplotlib.dates import AutoDateLocator, DateFormatter

    rates, latency = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    window = report.window
    overall = [b for b in report.buckets if b.event_type == OVERALL]
    types = sorted({b.event_type for b in report.buckets} - {OVERALL})

    rates.set_title(
        _plain(
            f"flowhook report {report.report_id[:8]} — arrivals vs processing per {window.bucket_seconds:g} s bucket"
        )
    )
    _draw_rates(rates, overall, [[b for b in report.buckets if b.event_type == t] for t in types])
    _draw_latency(latency, overall)
    if not report.buckets:
        rates.text(0.5, 0.5, "no events in this window", transform=rates.transAxes, ha="center", va="center")

    # The window, not the data, fixes the x range: one bucket or none still gets a readable axis.
    rates.set_xlim(_dates([window.start, window.end]))
    for ax in (rates, latency):
        ax.grid(True, alpha=0.3)
        # matplotlib.dates ships no type hints.
        ax.xaxis.set_major_locator(AutoDateLocator(tz=UTC))  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_formatter(DateFormatter("%H:%M:%S", tz=UTC))  # type: ignore[no-untyped-call]
    latency.set_xlabel(f"bucket start, UTC ({_span(window.start, window.end)})")


def _draw_rates(ax: Axes, overall: list[BucketTotals], per_type: list[list[BucketTotals]]) -> None:
    """λ and μ of the "all" buckets as steps, thin λ lines per type when few, backlog dashed on the right."""
    ax.set_ylabel("rate (events/s)")
    backlog_ax = ax.twinx()
    backlog_ax.set_ylabel("backlog at bucket end (events)")
    peak_rate = peak_backlog = 0.0
    if overall:
        arrivals = [b.arrival_rate for b in overall]
        processed = [b.processing_rate for b in overall]
        backlog = [float(b.backlog) for b in overall]
        # λ wider and underneath, so it still shows where μ keeps up with it exactly.
        ax.step(*_steps(overall, arrivals), where="post", lw=3.5, color="tab:blue", label="λ arrivals")
        ax.step(*_steps(overall, processed), where="post", lw=1.5, color="tab:green", label="μ processed")
        # Backlog is a level at an instant, the bucket's end, so points joined by lines rather than steps; the
        # last one sits on the window's right edge, hence no clipping.
        ends = _dates([b.start + timedelta(seconds=b.seconds) for b in overall])
        backlog_ax.plot(ends, backlog, ls="--", marker=".", color="tab:red", clip_on=False, label="backlog (right)")
        peak_rate = max(*arrivals, *processed)
        peak_backlog = max(backlog)
    if len(per_type) <= MAX_TYPE_LINES:
        for buckets, colour in zip(per_type, _TYPE_COLOURS, strict=False):
            if buckets:
                rates = [b.arrival_rate for b in buckets]
                label = _plain(f"λ {buckets[0].event_type}")
                ax.step(*_steps(buckets, rates), where="post", lw=0.8, color=colour, label=label)
                peak_rate = max(peak_rate, *rates)
    ax.set_ylim(0, _top(peak_rate))
    backlog_ax.set_ylim(0, _top(peak_backlog))
    handles, labels = ax.get_legend_handles_labels()
    more_handles, more_labels = backlog_ax.get_legend_handles_labels()
    if handles or more_handles:
        _legend(ax, [*handles, *more_handles], [*labels, *more_labels])


def _draw_latency(ax: Axes, overall: list[BucketTotals]) -> None:
    """p50/p95/p99 received→stored of the "all" buckets; a bucket without completions is a gap."""
    ax.set_ylabel("latency received→stored (s)")
    values = [v for b in overall if b.latency for v in (b.latency.p50, b.latency.p95, b.latency.p99)]
    if not values:
        ax.text(0.5, 0.5, "no completions in this window", transform=ax.transAxes, ha="center", va="center")
        return
    for name, colour, pick in _PERCENTILES:
        ys = [math.nan if b.latency is None else pick(b.latency) for b in overall]
        ax.step(*_steps(overall, ys), where="post", color=colour, label=name)
    low, high = min(values), max(values)
    if low > 0 and high / low > LOG_SPAN:
        ax.set_yscale("log")
        # The same headroom, in decades.
        ax.set_ylim(low / 2, high * (high / low) ** (HEADROOM - 1))
    else:
        ax.set_ylim(0, _top(high))
    handles, labels = ax.get_legend_handles_labels()
    _legend(ax, handles, labels)


def _top(peak: float) -> float:
    """The upper y limit for data peaking at `peak` (never 0, so an all-zero series still gets an axis)."""
    return peak * HEADROOM if peak > 0 else 1.0


def _legend(ax: Axes, handles: list[Artist], labels: list[str]) -> None:
    """A few short rows in the headroom: wide rather than tall, and never loc="best" (slow on many points)."""
    ax.legend(handles, labels, loc="upper left", fontsize="small", ncols=min(4, len(handles)), framealpha=0.8)


def _steps(buckets: Sequence[BucketTotals], values: Sequence[float]) -> tuple[np.ndarray, list[float]]:
    """x and y for a where="post" step that also covers the last bucket: its value is repeated at its end."""
    last = buckets[-1]
    xs = _dates([*(b.start for b in buckets), last.start + timedelta(seconds=last.seconds)])
    return xs, [*values, values[-1]]


def _dates(moments: Sequence[datetime]) -> np.ndarray:
    """UTC datetime64 values, which matplotlib plots on a date axis (it would warn on aware datetimes via numpy)."""
    import numpy as np

    return np.array([m.astimezone(UTC).replace(tzinfo=None) for m in moments], dtype="datetime64[us]")


def _span(start: datetime, end: datetime) -> str:
    first = start.astimezone(UTC)
    last = end.astimezone(UTC)
    if first.date() == last.date():
        return f"{first:%Y-%m-%d %H:%M:%S} → {last:%H:%M:%S}"
    return f"{first:%Y-%m-%d %H:%M:%S} → {last:%Y-%m-%d %H:%M:%S}"


def _plain(text: str) -> str:
    """Escape `$` so an id or event type is never read as mathtext (an odd number of them would raise)."""
    return text.replace("$", r"\$")
