"""Durable file writes: what is written here survives a crash as a whole file or not at all."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_path(path: Path) -> None:
    """Make a file's contents, or a folder's entries (a rename, a new file), durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make the folder's entries (a rename, a new file) durable."""
    fsync_path(path)


def write_file(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write `path` atomically and durably: a temporary file, fsync'd, renamed over it, folder fsync'd."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
