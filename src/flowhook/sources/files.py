"""The files source: new or changed files in a watched folder become `data_update` events.

A file is identified by its path and content (SHA-256), so rewriting it with the same bytes is not
a new event, and a resend after a crash carries the same event id. The scan state is saved only
after the gateway has the events on disk, so a failed delivery is retried on the next scan.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flowhook.events.builtin import DATA_UPDATE
from flowhook.sources.sink import DeliveryFailed, EventSink

logger = logging.getLogger(__name__)

SOURCE = "files"


@dataclass(frozen=True)
class FileChange:
    """A file that is new, or whose content changed since the last scan."""

    path: Path
    size: int
    mtime_ns: int
    checksum: str
    new: bool


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class FileWatcher:
    """Scans a folder tree by polling (no OS-specific watcher), remembering what it has reported."""

    def __init__(self, root: Path, state_path: Path, *, settle_seconds: float = 1.0) -> None:
        self.root = root
        self.state_path = state_path
        self.settle_seconds = settle_seconds
        self._state: dict[str, dict[str, Any]] = self._load()

    def scan(self) -> list[FileChange]:
        """Files new or changed since the last commit; files still being written are left for later."""
        changes = []
        now_ns = time.time_ns()
        for path in sorted(self.root.rglob("*")):
            if not path.is_file() or any(part.startswith(".") for part in path.relative_to(self.root).parts):
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            if now_ns - stat.st_mtime_ns < self.settle_seconds * 1e9:
                continue  # may still be growing
            key = str(path.relative_to(self.root))
            known = self._state.get(key)
            if known and (known["size"], known["mtime_ns"]) == (stat.st_size, stat.st_mtime_ns):
                continue
            checksum = _sha256(path)
            if known and known["checksum"] == checksum:
                known["mtime_ns"] = stat.st_mtime_ns  # rewritten with the same bytes: not an event
                continue
            changes.append(FileChange(path, stat.st_size, stat.st_mtime_ns, checksum, new=known is None))
        return changes

    def commit(self, changes: list[FileChange]) -> None:
        """Remember `changes` as reported (after the gateway accepted them)."""
        for change in changes:
            key = str(change.path.relative_to(self.root))
            self._state[key] = {"size": change.size, "mtime_ns": change.mtime_ns, "checksum": change.checksum}
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._state))
        os.replace(tmp, self.state_path)

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            state: dict[str, dict[str, Any]] = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return {}
        return state


def change_item(change: FileChange, *, dataset: str) -> dict[str, Any]:
    """The `data_update` event for a file change; its id is the file's URI and content checksum."""
    uri = change.path.resolve().as_uri()
    return {
        "type": DATA_UPDATE,
        "id": f"{uri}#sha256:{change.checksum}",
        "timestamp": datetime.fromtimestamp(change.mtime_ns / 1e9, UTC).isoformat(),
        "data": {
            "dataset": dataset,
            "uri": uri,
            "rows": 0,
            "operation": "insert" if change.new else "update",
            "checksum": f"sha256:{change.checksum}",
            "size_bytes": change.size,
        },
    }


def scan_once(watcher: FileWatcher, sink: EventSink, *, dataset: str) -> int:
    """Report what changed; returns how many files. Nothing is remembered unless the sink took it."""
    changes = watcher.scan()
    if not changes:
        return 0
    sink.deliver([change_item(change, dataset=dataset) for change in changes])
    watcher.commit(changes)
    return len(changes)


def watch(
    watcher: FileWatcher,
    sink: EventSink,
    *,
    dataset: str,
    interval: float,
    stop: threading.Event | None = None,
    duration: float | None = None,
) -> int:
    """Scan every `interval` seconds until `stop` is set or `duration` has passed; returns files reported."""
    stop = stop or threading.Event()
    deadline = None if duration is None else time.monotonic() + duration
    reported = 0
    while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
        try:
            reported += scan_once(watcher, sink, dataset=dataset)
        except DeliveryFailed as exc:
            logger.warning("files not delivered, retrying next scan: %s", exc)
        stop.wait(interval)
    return reported
