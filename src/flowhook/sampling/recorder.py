"""Per-second records of the spool's levels, the deliveries' outcomes and the gateway's CPU.

Levels are sampled (every `period` seconds) and integrated left-Riemann: a level holds from its sample until
the next one. The integral is cut at whole seconds, so each record covers one second: `covered` says how
much of it was watched (a gap longer than `max_gap` is not filled in: it is time nobody looked).

With several gateway processes on one spool, one of them watches the shared folders (ready, sent, claimed) and
every one its own open batches: a process that does not watch the folders records its levels without
coverage, so the report sums every writer's event-seconds over the seconds the watcher covered.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from flowhook.names import ALL_TYPES
from flowhook.sampling.log import Record, SampleLog

logger = logging.getLogger(__name__)

STATES = ("open", "ready", "sent", "claimed")
"""Where an event received and not yet stored can be, in the order it passes them."""

UNKNOWN = ""
"""The type or source of a delivery refused before it was read (e.g. a bad signature, a full spool)."""

Levels = Mapping[str, Sequence[int]]
"""Events per type in each of STATES, in that order."""


class _Second:
    """One second's integrals: covered time, and per type event-seconds in each state and the peak level."""

    def __init__(self) -> None:
        self.covered = 0.0
        self.samples = 0
        self.states: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(STATES))
        self.peak: dict[str, int] = defaultdict(int)

    def add(self, levels: Levels, seconds: float, *, covering: bool = True) -> None:
        if covering:
            self.covered += seconds
            self.samples += 1
        total = [0.0] * len(STATES)
        for event_type, counts in levels.items():
            acc = self.states[event_type]
            for i, count in enumerate(counts):
                acc[i] += count * seconds
                total[i] += count * seconds
            self.peak[event_type] = max(self.peak[event_type], sum(counts))
        acc = self.states[ALL_TYPES]
        for i, value in enumerate(total):
            acc[i] += value
        self.peak[ALL_TYPES] = max(self.peak[ALL_TYPES], sum(sum(c) for c in levels.values()))

    def records(self, at: int, writer: str) -> list[Record]:
        rows: list[Record] = []
        # add() always fills ALL_TYPES: its record is written every second, since it carries the coverage.
        for event_type, acc in self.states.items():
            if event_type != ALL_TYPES and not any(acc):
                continue
            rows.append(
                {
                    "kind": "backlog",
                    "at": at,
                    "writer": writer,
                    "event_type": event_type,
                    "covered_seconds": round(self.covered, 6),
                    "samples": self.samples,
                    "event_seconds": round(sum(acc), 6),
                    **{f"{state}_seconds": round(value, 6) for state, value in zip(STATES, acc, strict=True)},
                    "peak": self.peak.get(event_type, 0),
                }
            )
        return rows


class Recorder:
    """Collects samples and counts, and writes each finished second to the sample log."""

    def __init__(
        self,
        log: SampleLog,
        *,
        max_gap: float = 1.0,
        clock: Callable[[], float] = time.time,
        cpu: Callable[[], float] = time.process_time,
    ) -> None:
        self.log = log
        self.max_gap = max_gap
        self._clock = clock
        self._cpu = cpu
        self._last: tuple[float, dict[str, tuple[int, ...]], bool] | None = None
        self._seconds: dict[int, _Second] = {}
        self._ingress: dict[tuple[int, str, str, int, str, str], list[int]] = {}
        self._usage_from = (clock(), cpu())

    def sample(self, levels: Levels, at: float | None = None, *, covering: bool = True) -> None:
        """Take the levels seen at `at` (now): the previous ones held until then. Without `covering` they are
        this process's open batches only (another process watches the shared folders): time is not covered."""
        at = self._clock() if at is None else at
        if self._last is not None:
            since, previous, was_covering = self._last
            if 0 < at - since <= self.max_gap:
                self._integrate(previous, since, at, covering=was_covering)
        self._last = (at, {name: tuple(counts) for name, counts in levels.items() if any(counts)}, covering)

    def _integrate(self, levels: Levels, start: float, end: float, *, covering: bool) -> None:
        second = math.floor(start)
        while second < end:
            piece = min(end, second + 1) - max(start, second)
            if piece > 0:
                self._seconds.setdefault(second, _Second()).add(levels, piece, covering=covering)
            second += 1

    def count(
        self,
        source: str,
        status: int,
        code: str,
        events: Mapping[str, int] | None = None,
        *,
        quarantined: bool = False,
    ) -> None:
        """One delivery's answer; `events` its events per type where it was read ({} or None: type unknown);
        `quarantined` when it was authentic but kept aside (its status says why)."""
        at = math.floor(self._clock())
        outcome = outcome_of(status, quarantined=quarantined)
        for i, (event_type, n) in enumerate((events or {UNKNOWN: 0}).items()):
            cell = self._ingress.setdefault((at, source, event_type, status, code, outcome), [0, 0])
            cell[0] += 1 if i == 0 else 0  # a delivery counts once, under its first type; its events under each
            cell[1] += n

    def flush(self, now: float | None = None) -> list[Record]:
        """Write (and return) every second that has ended: backlog up to the last sample, counts up to now."""
        now = self._clock() if now is None else now
        records: list[Record] = []
        done_before = math.floor(self._last[0]) if self._last else math.floor(now)
        for second in sorted(s for s in self._seconds if s < done_before):
            records += self._seconds.pop(second).records(second, self.log.writer)
        current = math.floor(now)
        for key in sorted(k for k in self._ingress if k[0] < current):
            at, source, event_type, status, code, outcome = key
            deliveries, events = self._ingress.pop(key)
            records.append(
                {
                    "kind": "ingress",
                    "at": at,
                    "writer": self.log.writer,
                    "source": source,
                    "event_type": event_type,
                    "status": status,
                    "code": code,
                    "outcome": outcome,
                    "deliveries": deliveries,
                    "events": events,
                }
            )
        wall, cpu = now, self._cpu()
        (since, cpu_since), self._usage_from = self._usage_from, (wall, cpu)
        if wall > since:
            records.append(
                {
                    "kind": "usage",
                    "at": math.floor(since),
                    "writer": self.log.writer,
                    "wall_seconds": round(wall - since, 6),
                    "cpu_seconds": round(cpu - cpu_since, 6),
                }
            )
        if records:
            self.log.write(records)
        return records

    async def run(
        self,
        levels: Callable[[], Awaitable[Levels]],
        *,
        period: float = 0.1,
        covering: Callable[[], bool] | None = None,
    ) -> None:
        """Sample every `period` seconds and write each second as it ends, until cancelled; `covering()` (asked
        after each sample is taken) whether that sample watched the shared folders (default: always)."""
        next_flush = math.floor(self._clock()) + 1
        while True:
            try:
                taken = await levels()
                self.sample(taken, covering=covering() if covering is not None else True)
            except OSError as exc:  # a folder vanished mid-count: skip this sample (a gap, not a wrong level)
                logger.debug("backlog sample skipped: %s", exc)
                self._last = None
            if self._clock() >= next_flush:
                next_flush = math.floor(self._clock()) + 1
                try:
                    await asyncio.to_thread(self.flush)
                except OSError as exc:
                    logger.warning("cannot write backlog samples: %s", exc)
            await asyncio.sleep(period)


def outcome_of(status: int, *, quarantined: bool = False) -> str:
    """The outcome a delivery's answer stands for (one of `OUTCOMES`)."""
    if quarantined:
        return "quarantined"
    if status == 202:
        return "accepted"
    return "timed_out" if status == 408 else "refused"


def ingress_events(events: Sequence[Any]) -> dict[str, int]:
    """Events per type of an accepted or quarantined delivery (anything with a `type`)."""
    counts: dict[str, int] = defaultdict(int)
    for event in events:
        counts[getattr(event, "type", UNKNOWN)] += 1
    return dict(counts)
