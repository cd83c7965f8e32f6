"""Little's law, checked from two independent sources.

L = λW says the time-average number of events in the system equals the arrival rate times the mean time
in it. Over a stretch of time both sides are the same integral, event-seconds in the system, counted two
ways: K from the store's per-event timestamps (each event from `received` to `stored`), and S from the
gateway's samples of its spool (events per state, every 0.1 s). They agree when every event is counted
once with honest timestamps; a row lost or doubled, a timestamp shifted, or an event the spool held that
the store never heard of opens a gap.

Only the time the sampler watched is compared. Sampling with period h misplaces each arrival and each
departure by less than h, so over N of them S - K has a standard deviation of about h·√(N/6): the check
fails when the gap is over both LITTLE_TOLERANCE of the larger side and three of those.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

LITTLE_TOLERANCE = 0.05
"""The largest gap between S and K, as a share of the larger, that still counts as agreement."""

MIN_WATCHED_SHARE = 0.9
"""Below this share of the window's event-seconds in watched time, the check is `incomplete`."""

Verdict = Literal["holds", "fails", "incomplete"]


@dataclass(frozen=True)
class BacklogSample:
    """What the samples and the timestamps say about one type (or all) over the time the sampler watched."""

    sampled_seconds: float
    """S: event-seconds integrated from the spool's sampled levels."""
    counted_seconds: float
    """K: event-seconds from the per-event timestamps, over the same watched time."""
    changes: int
    """Arrivals plus departures within the watched time (what sampling can misplace)."""
    watched_seconds: float
    """How long the sampler watched within the window."""
    period_seconds: float
    """The sampling period h."""


@dataclass(frozen=True)
class LittleCheck:
    """The sampled backlog against the one counted from timestamps, and what follows."""

    sample: BacklogSample
    window_counted_seconds: float
    """K over the whole window, watched or not: how much of it the check saw is `watched_share`."""

    @property
    def sampled_backlog(self) -> float:
        """L from the samples: mean events in the system while watched."""
        return self.sample.sampled_seconds / self.sample.watched_seconds if self.sample.watched_seconds else 0.0

    @property
    def counted_backlog(self) -> float:
        """λ·W from the timestamps over the same time."""
        return self.sample.counted_seconds / self.sample.watched_seconds if self.sample.watched_seconds else 0.0

    @property
    def gap(self) -> float:
        """|S − K| as a share of the larger (0 when both are 0)."""
        larger = max(self.sample.sampled_seconds, self.sample.counted_seconds)
        return abs(self.sample.sampled_seconds - self.sample.counted_seconds) / larger if larger > 0 else 0.0

    @property
    def sigma(self) -> float:
        """The standard deviation of S − K that sampling alone explains, in event-seconds."""
        return self.sample.period_seconds * math.sqrt(self.sample.changes / 6)

    @property
    def allowed(self) -> float:
        """The largest |S − K| taken as agreement, in event-seconds."""
        larger = max(self.sample.sampled_seconds, self.sample.counted_seconds)
        return max(LITTLE_TOLERANCE * larger, 3 * self.sigma)

    @property
    def watched_share(self) -> float:
        """The share of the window's event-seconds that fell in watched time."""
        if self.window_counted_seconds <= 0:
            return 1.0
        return min(1.0, self.sample.counted_seconds / self.window_counted_seconds)

    @property
    def verdict(self) -> Verdict:
        if self.watched_share < MIN_WATCHED_SHARE:
            return "incomplete"
        difference = abs(self.sample.sampled_seconds - self.sample.counted_seconds)
        return "fails" if difference > self.allowed else "holds"


def little_check(sample: BacklogSample | None, window_counted_seconds: float) -> LittleCheck | None:
    """None when nothing was sampled, or nothing was in the system in the window by either count."""
    if sample is None:
        return None
    if sample.sampled_seconds <= 0 and window_counted_seconds <= 0:
        return None
    return LittleCheck(sample=sample, window_counted_seconds=window_counted_seconds)
