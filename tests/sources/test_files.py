"""The files source on a real folder: new and changed files are reported once, by content."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from flowhook.events import load_catalog
from flowhook.sources.files import FileWatcher, scan_once
from flowhook.sources.sink import DeliveryFailed, MemorySink


class FailingSink:
    def deliver(self, items: Any, *, delivery_id: str | None = None) -> list[str]:
        raise DeliveryFailed("the gateway is down")


def write(path: Path, content: bytes, *, age: float = 5.0) -> None:
    """Write a file whose mtime is `age` seconds ago (settled)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    then = time.time() - age
    os.utime(path, (then, then))


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "incoming", tmp_path / "state.json"


def test_a_new_file_is_one_valid_data_update(folders: tuple[Path, Path]) -> None:
    root, state = folders
    write(root / "orders" / "2026-11-27.csv", b"id,total\n1,10\n")
    sink = MemorySink()
    assert scan_once(FileWatcher(root, state), sink, dataset="incoming") == 1
    [[item]] = sink.deliveries
    data = load_catalog().get("data_update").model.model_validate(item["data"])
    assert item["type"] == "data_update" and data.operation == "insert"
    assert data.uri == (root / "orders" / "2026-11-27.csv").resolve().as_uri()
    assert data.size_bytes == 14 and data.checksum is not None and data.checksum.startswith("sha256:")
    assert item["id"] == f"{data.uri}#{data.checksum}"


def test_same_content_rewritten_is_not_an_event_but_a_change_is(folders: tuple[Path, Path]) -> None:
    root, state = folders
    path = root / "a.json"
    write(path, b'{"v": 1}', age=10)
    watcher = FileWatcher(root, state)
    sink = MemorySink()
    scan_once(watcher, sink, dataset="d")
    write(path, b'{"v": 1}', age=5)  # same bytes, new mtime
    assert scan_once(watcher, sink, dataset="d") == 0
    write(path, b'{"v": 2}', age=3)
    assert scan_once(watcher, sink, dataset="d") == 1
    first, second = sink.deliveries[0][0], sink.deliveries[1][0]
    assert second["data"]["operation"] == "update" and second["id"] != first["id"]


def test_a_failed_delivery_is_retried_with_the_same_ids(folders: tuple[Path, Path]) -> None:
    root, state = folders
    write(root / "x.bin", b"\x00\x01")
    watcher = FileWatcher(root, state)
    with pytest.raises(DeliveryFailed):
        scan_once(watcher, FailingSink(), dataset="d")
    sink = MemorySink()
    assert scan_once(watcher, sink, dataset="d") == 1
    # A restarted watcher remembers what was delivered.
    assert scan_once(FileWatcher(root, state), sink, dataset="d") == 0
    assert len(sink.deliveries) == 1


def test_files_still_being_written_and_hidden_files_wait(folders: tuple[Path, Path]) -> None:
    root, state = folders
    write(root / "growing.csv", b"1\n", age=0)
    write(root / ".partial" / "x.csv", b"1\n")
    write(root / ".hidden.csv", b"1\n")
    watcher = FileWatcher(root, state, settle_seconds=2.0)
    assert watcher.scan() == []
    write(root / "growing.csv", b"1\n2\n", age=3)
    assert [change.path.name for change in watcher.scan()] == ["growing.csv"]
