"""A full disk while the store writes: the file is never left unreadable, and the next write stores the events.

The disk fills deterministically: a child process writes under RLIMIT_FSIZE (with SIGXFSZ ignored), so any
write past the limit fails with EFBIG the way a full disk fails with ENOSPC, at exactly the byte chosen.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from flowhook.store import DuckDBStore
from tests.store.test_duckdb_store import make_event

ROOT = Path(__file__).resolve().parents[2]

# The child's preamble: cap every file it writes at `limit` bytes.
_CAPPED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
path = sys.argv[1]
"""


def run_capped(path: Path, limit: int, body: str) -> subprocess.CompletedProcess[str]:
    """Run `body` in a child whose files cannot grow past `limit` bytes; `path` is its `path`."""
    code = _CAPPED + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-c", code, str(path), str(limit)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


_WRITE_THREE = """
from pathlib import Path
from flowhook.store import DuckDBStore
from tests.store.test_duckdb_store import make_event
try:
    DuckDBStore(Path(path), lock_timeout=5).write_events([make_event(f"e{i}") for i in range(3)])
except Exception as exc:
    print(type(exc).__name__, exc)
    sys.exit(3)
"""


# 0: not even the first header; 4096 and 6000: the main header only; 8192: one database header short.
@pytest.mark.parametrize("limit", [0, 4096, 6000, 8192])
def test_a_creation_cut_short_leaves_nothing_behind_and_the_next_write_stores_everything(
    tmp_path: Path, limit: int
) -> None:
    path = tmp_path / "events.duckdb"
    child = run_capped(path, limit, _WRITE_THREE)
    assert child.returncode == 3, child.stderr
    assert "too large" in child.stdout.lower() or "no space" in child.stdout.lower(), child.stdout

    assert not path.exists()  # nothing half-made at the path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.duckdb.lock"]

    store = DuckDBStore(path)
    assert store.write_events([make_event(f"e{i}") for i in range(3)]) == 3
    assert store.count_events() == 3


def test_a_full_disk_during_a_commit_to_an_existing_file_rolls_back_and_the_retry_stores_it(tmp_path: Path) -> None:
    path = tmp_path / "events.duckdb"
    store = DuckDBStore(path)
    store.write_events([make_event("before")])
    # The file is there: the WAL is the file that grows, and it may not grow past a few bytes.
    child = run_capped(path, 64, _WRITE_THREE)
    assert child.returncode == 3, child.stderr

    assert store.count_events() == 1  # the failed commit left no part of itself
    assert store.write_events([make_event(f"e{i}") for i in range(3)]) == 3
    assert store.count_events() == 4
    assert store.duplicate_ids() == 0


def test_an_unfinished_file_left_by_an_older_version_is_moved_aside_and_the_store_created(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "events.duckdb"
    # What DuckDB itself leaves when the disk fills between its headers: a 4 KiB file no open can read.
    child = run_capped(path, 4096, "import duckdb\ntry:\n    duckdb.connect(path)\nexcept duckdb.Error:\n    pass\n")
    assert child.returncode == 0, child.stderr
    assert path.stat().st_size == 4096
    with pytest.raises(duckdb.Error, match="Could not read enough bytes"):
        duckdb.connect(str(path))

    with caplog.at_level(logging.WARNING, logger="flowhook.store.duckdb_store"):
        assert DuckDBStore(path).write_events([make_event("e1")]) == 1
    (aside,) = tmp_path.glob("events.duckdb.unfinished-*")
    assert aside.stat().st_size == 4096  # moved, not deleted
    assert "creation never finished" in caplog.text
    assert DuckDBStore(path).count_events() == 1


@pytest.mark.parametrize("content", [b"", b"not a database\n"], ids=["empty", "text"])
def test_a_small_file_that_is_not_an_unfinished_duckdb_file_is_left_alone(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "events.duckdb"
    path.write_bytes(content)
    if content:  # someone else's file: an error, and the file untouched
        with pytest.raises(duckdb.Error):
            DuckDBStore(path).count_events()
        assert path.read_bytes() == content
        assert list(tmp_path.glob("*.unfinished-*")) == []
    else:  # an empty file holds nothing either (DuckDB's creation can stop before its first byte)
        assert DuckDBStore(path).count_events() == 0
        assert len(list(tmp_path.glob("*.unfinished-*"))) == 1


def test_a_leftover_of_a_creation_that_died_is_cleared(tmp_path: Path) -> None:
    path = tmp_path / "events.duckdb"
    (tmp_path / ".events.duckdb.creating").write_bytes(b"\0" * 4096)
    (tmp_path / ".events.duckdb.creating.wal").write_bytes(b"\0" * 10)
    assert DuckDBStore(path).write_events([make_event("e1")]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.duckdb", "events.duckdb.lock"]
