"""Sample files: one JSON-lines file per minute and writer, `<samples>/<YYYYmmddTHHMM>.<writer>.jsonl`.

Lines are appended without fsync: a crash loses at most the last second, which then shows as time not covered.
"""

from __future__ import annotations

import os
import re
import socket
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

Record = Mapping[str, Any]
"""One line: {"kind": "backlog" | "ingress" | "usage", "at": epoch second, "writer": ..., ...}."""

_MINUTE = "%Y%m%dT%H%M"
_NAME = re.compile(r"^(\d{8}T\d{4})\.([A-Za-z0-9_.-]+)\.jsonl$")


def writer_id() -> str:
    """This process, as named in sample files: host and pid."""
    host = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:40] or "host"
    return f"{host}-{os.getpid()}"


def minute_of(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime(_MINUTE)


def file_minute(path: Path) -> datetime | None:
    """When the file's minute starts (UTC); None for a name that is not a sample file's."""
    match = _NAME.match(path.name)
    return datetime.strptime(match.group(1), _MINUTE).replace(tzinfo=UTC) if match else None


class SampleLog:
    """Appends records to this writer's minute files."""

    def __init__(self, folder: Path, writer: str | None = None) -> None:
        self.folder = folder
        self.writer = writer or writer_id()
        folder.mkdir(parents=True, exist_ok=True)

    def write(self, records: Iterable[Record]) -> None:
        by_minute: dict[str, list[bytes]] = defaultdict(list)
        for record in records:
            by_minute[minute_of(record["at"])].append(orjson.dumps(record) + b"\n")
        for minute, lines in by_minute.items():
            with (self.folder / f"{minute}.{self.writer}.jsonl").open("ab") as fh:
                fh.write(b"".join(lines))


def sample_files(folder: Path) -> Iterator[tuple[datetime, Path]]:
    """(minute, path) of every sample file in the folder, oldest first."""
    if not folder.is_dir():
        return
    found = [(minute, path) for path in folder.iterdir() if (minute := file_minute(path)) is not None]
    yield from sorted(found)


def read_records(path: Path) -> list[dict[str, Any]]:
    """The whole lines of one file; a torn last line (a crash mid-write) is skipped."""
    records = []
    for line in path.read_bytes().split(b"\n"):
        if not line:
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records
