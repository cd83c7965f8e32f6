"""Sample files into the store: imported once (a repeat changes nothing), deleted after, read back by window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from flowhook.metrics import Window
from flowhook.names import ALL_TYPES
from flowhook.sampling.archive import import_samples, window_samples
from flowhook.sampling.compare import backlog_samples
from flowhook.sampling.log import SampleLog, sample_files
from flowhook.sampling.recorder import Recorder
from flowhook.store import DuckDBStore

T = 1_800_000_000  # 2027-01-15 08:00:00 UTC


def _write_minutes(folder: Path, minutes: int) -> None:
    clock = [float(T)]
    recorder = Recorder(SampleLog(folder, writer="w1"), clock=lambda: clock[0], cpu=lambda: 0.0)
    for k in range(minutes * 600 + 1):  # every 0.1 s
        clock[0] = T + k / 10
        recorder.sample({"user_request": (1, 2, 0, 1)})
        if k % 10 == 0:
            recorder.count("demo", 202, "accepted", {"user_request": 4})
            recorder.flush()


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T + seconds, UTC)


def test_finished_minutes_are_imported_and_read_back_with_the_files_left(tmp_path: Path) -> None:
    folder, db = tmp_path / "samples", DuckDBStore(tmp_path / "flowhook.duckdb")
    _write_minutes(folder, 3)
    assert len(list(sample_files(folder))) == 3  # the last sample (08:03:00) ends no second yet
    # At 08:02:30 only the first minute (and the second's, 5 s after it ended) are finished.
    assert import_samples(db, folder, now=_at(150)) == 2
    assert len(list(sample_files(folder))) == 1
    with db.connect(reports=True) as con:
        found = window_samples(con, folder, _at(0), _at(180))
    assert sorted({row["writer"] for row in found.backlog}) == ["w1"]
    seconds = sorted(row["second_start"] for row in found.backlog if row["event_type"] == "all")
    assert seconds == [_at(s) for s in range(180)]  # from the store and from the files, none twice
    assert sum(row["event_seconds"] for row in found.backlog if row["event_type"] == "all") == pytest.approx(4 * 180)
    assert sum(row["deliveries"] for row in found.ingress) == 180
    assert sum(row["events"] for row in found.ingress) == 720


def test_an_import_repeated_after_a_crash_changes_nothing(tmp_path: Path) -> None:
    folder, db = tmp_path / "samples", DuckDBStore(tmp_path / "flowhook.duckdb")
    _write_minutes(folder, 1)
    kept = {path.name: path.read_bytes() for _, path in sample_files(folder)}
    import_samples(db, folder, now=_at(3600))
    for name, data in kept.items():  # the crash came after the commit, before the files were deleted
        (folder / name).write_bytes(data)
    import_samples(db, folder, now=_at(3600))
    assert db.query(
        "SELECT count(*), count(DISTINCT second_start) FROM backlog_samples WHERE event_type = 'all'", reports=True
    ) == [(60, 60)]


def test_rows_older_than_keep_days_are_dropped(tmp_path: Path) -> None:
    folder, db = tmp_path / "samples", DuckDBStore(tmp_path / "flowhook.duckdb")
    _write_minutes(folder, 1)
    import_samples(db, folder, now=_at(3600))
    assert db.query("SELECT count(*) FROM gateway_usage", reports=True)[0][0] > 0
    import_samples(db, folder, now=_at(3600) + timedelta(days=8), keep_days=7)
    for table in ("backlog_samples", "ingress_counts", "gateway_usage"):
        assert db.query(f"SELECT count(*) FROM {table}", reports=True) == [(0,)]


def test_a_second_sums_its_writers_the_folder_watcher_and_the_processes_that_saw_only_their_open_batches(
    tmp_path: Path,
) -> None:
    """Gateway processes on one spool: w1 watches the folders until T+5.5, w3 after it (w1 died); w2 all along
    records only its own open batches, covering nothing. Each watched second's events add up over its writers."""
    folder, db = tmp_path / "samples", DuckDBStore(tmp_path / "flowhook.duckdb")
    clock = [float(T)]
    recorders = {
        name: Recorder(SampleLog(folder, writer=name), clock=lambda: clock[0], cpu=lambda: 0.0)
        for name in ("w1", "w2", "w3")
    }
    for k in range(101):  # every 0.1 s for 10 s
        clock[0] = T + k / 10
        watcher = recorders["w1"] if k <= 55 else recorders["w3"]
        if k == 55:
            recorders["w3"].sample({"user_request": (0, 2, 0, 1)})  # w3 takes the sampler lock over at T+5.5
        watcher.sample({"user_request": (0, 2, 0, 1)})
        recorders["w2"].sample({"user_request": (4, 0, 0, 0)}, covering=False)
    for recorder in recorders.values():
        recorder.flush()
    window = Window(_at(0), _at(10), bucket_seconds=10.0)
    with db.connect(reports=True) as con:
        found = window_samples(con, folder, window.start, window.end)
    con = duckdb.connect()
    con.execute("CREATE TEMP TABLE ev (received TIMESTAMP, stored TIMESTAMP, type VARCHAR)")
    sampled = backlog_samples(con, found, window, now=_at(20))
    assert sampled is not None
    # Not T+5: w1 died within it, before writing it (w3's half alone is not the whole second).
    assert sampled[ALL_TYPES].watched_seconds == 9
    assert sampled[ALL_TYPES].period_seconds == pytest.approx(0.1)
    assert sampled["user_request"].sampled_seconds == pytest.approx((3 + 4) * 9)
