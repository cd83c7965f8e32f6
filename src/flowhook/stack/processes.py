"""Stopping child processes for good (SIGTERM twice, then SIGKILL) and finding the ones they started, from /proc."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def terminate(pid: int, wait: Callable[[float], bool], *, group: bool = True) -> None:
    """SIGTERM, a second SIGTERM (an idle Prefect worker ignores the first), then SIGKILL."""
    for sig, timeout in ((signal.SIGTERM, 3.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig) if group else os.kill(pid, sig)
        except ProcessLookupError:
            return
        if wait(timeout):
            return


def exited(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


def gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            return True
        time.sleep(0.1)
    return False


def descendants(pid: int) -> list[int]:
    """PIDs of every process below `pid`, from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def prefect_cli() -> list[str]:
    """`python -m prefect` of this environment."""
    return [sys.executable, "-m", "prefect"]
