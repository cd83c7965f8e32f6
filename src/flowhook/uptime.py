"""How long the local stack on a data folder has been up: a marker file the stack writes when it starts and
removes when it stops, read by the trigger path's heartbeat check (a young stack has not missed a heartbeat)."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path


def _marker(data_dir: Path) -> Path:
    return data_dir / "stack.json"


def mark_started(data_dir: Path) -> None:
    """Record that this process started the stack on `data_dir`, now."""
    _marker(data_dir).write_text(json.dumps({"started": time.time(), "pid": os.getpid()}))


def mark_stopped(data_dir: Path) -> None:
    """Remove the marker: the stack on `data_dir` is down."""
    _marker(data_dir).unlink(missing_ok=True)


def started_at(data_dir: Path) -> datetime | None:
    """When the local stack on this data folder started, if it is still up (its process alive), else None."""
    try:
        marker = json.loads(_marker(data_dir).read_text())
        pid, started = int(marker["pid"]), float(marker["started"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except PermissionError:
        pass  # alive, another user's
    except OSError:
        return None  # gone without stopping the stack (killed)
    return datetime.fromtimestamp(started, UTC)
