"""CPU seconds and peak memory of the stack's processes and their children, sampled from /proc.

A flow-run process lives a few seconds; sampling every 0.2 s sees it. CPU of a process that
started inside the window counts from zero; a process that exits loses at most its last interval.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float, float] | None:
    """(parent PID, CPU seconds, start time in seconds since boot) of a process, or None if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK, int(fields[19]) / _TICK


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far; 0 if it is gone."""
    stat = _stat(pid)
    return 0.0 if stat is None else stat[1]


def peak_rss(pid: int) -> int:
    """Peak resident set size (VmHWM) of a process in bytes; 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def reset_peak_rss(pid: int) -> None:
    """Start a new peak-RSS measurement for the process (writes 5 to /proc/PID/clear_refs)."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def _uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


@dataclass
class Usage:
    """What one part (a process and everything below it) used in a window."""

    cpu_seconds: float = 0.0
    peak_rss: int = 0  # the part's own process
    child_peak_rss: int = 0  # the largest child, e.g. a flow-run process of the worker
    children_seen: int = 0


@dataclass
class _Part:
    pid: int
    cpu_start: dict[int, float] = field(default_factory=dict)
    cpu_last: dict[int, float] = field(default_factory=dict)
    child_peak: dict[int, int] = field(default_factory=dict)


class Sampler:
    """Samples the process trees under `roots` (name → PID) in a background thread."""

    def __init__(self, roots: dict[str, int], *, interval: float = 0.2) -> None:
        self._parts = {name: _Part(pid) for name, pid in roots.items()}
        self._interval = interval
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="procstats", daemon=True)
        self._window_start = _uptime()

    def __enter__(self) -> Sampler:
        self.reset()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def reset(self) -> None:
        """Start a new window: CPU from now, peaks from now."""
        with self._lock:
            self._window_start = _uptime()
            for part in self._parts.values():
                part.cpu_start.clear()
                part.cpu_last.clear()
                part.child_peak.clear()
                reset_peak_rss(part.pid)
            self._sample()

    def usage(self) -> dict[str, Usage]:
        """Usage per part since the last `reset`."""
        with self._lock:
            self._sample()
            return {
                name: Usage(
                    cpu_seconds=sum(part.cpu_last[p] - part.cpu_start[p] for p in part.cpu_last),
                    peak_rss=peak_rss(part.pid),
                    child_peak_rss=max(part.child_peak.values(), default=0),
                    children_seen=len(part.child_peak),
                )
                for name, part in self._parts.items()
            }

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            with self._lock:
                self._sample()

    def _sample(self) -> None:
        stats = {}
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                stat = _stat(int(entry.name))
                if stat is not None:
                    stats[int(entry.name)] = stat
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in stats.items():
            children.setdefault(ppid, []).append(pid)
        for part in self._parts.values():
            tree, todo = [], [part.pid]
            while todo:
                pid = todo.pop()
                if pid in stats:
                    tree.append(pid)
                    todo.extend(children.get(pid, []))
            for pid in tree:
                _, cpu, started = stats[pid]
                if pid not in part.cpu_start:
                    part.cpu_start[pid] = 0.0 if started >= self._window_start else cpu
                part.cpu_last[pid] = cpu
                if pid != part.pid:
                    part.child_peak[pid] = max(part.child_peak.get(pid, 0), peak_rss(pid))


def pin(pid: int, cpus: set[int]) -> None:
    """Keep every thread of a process (and what it starts later) on `cpus`."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(task.name), cpus)
