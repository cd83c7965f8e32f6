"""The recorder: levels integrated per second, counts per second, files per minute; on a fake clock, real files."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowhook.names import ALL_TYPES
from flowhook.sampling.log import SampleLog, read_records, sample_files
from flowhook.sampling.recorder import STATES, UNKNOWN, Recorder

T = 1_800_000_000  # a whole second, 08:00:00 UTC on 2027-01-15


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _recorder(tmp_path: Path, clock: Clock) -> Recorder:
    return Recorder(SampleLog(tmp_path, writer="w1"), clock=clock, cpu=lambda: 0.0)


def _backlog(records: list[dict[str, object]]) -> dict[tuple[object, object], dict[str, object]]:
    return {(r["at"], r["event_type"]): r for r in records if r["kind"] == "backlog"}


def test_levels_are_integrated_per_second_and_split_at_second_edges(tmp_path: Path) -> None:
    clock = Clock(T + 0.5)
    recorder = _recorder(tmp_path, clock)
    recorder.sample({"a": (2, 0, 0, 1)}, at=T + 0.5)  # 3 events from T+0.5 ...
    recorder.sample({"a": (0, 4, 0, 0), "b": (0, 0, 1, 0)}, at=T + 1.25)  # ... 4 + 1 from T+1.25 ...
    recorder.sample({}, at=T + 2.0)  # ... none from T+2
    recorder.sample({}, at=T + 2.1)
    backlog = _backlog(recorder.flush(now=T + 2.1))
    first, second = backlog[(T, ALL_TYPES)], backlog[(T + 1, ALL_TYPES)]
    assert first["covered_seconds"] == pytest.approx(0.5)
    assert first["event_seconds"] == pytest.approx(3 * 0.5)
    assert (first["open_seconds"], first["claimed_seconds"]) == (pytest.approx(1.0), pytest.approx(0.5))
    # T+1: 3 events for 0.25 s, then 5 for 0.75 s.
    assert second["covered_seconds"] == pytest.approx(1.0)
    assert second["event_seconds"] == pytest.approx(3 * 0.25 + 5 * 0.75)
    assert backlog[(T + 1, "a")]["event_seconds"] == pytest.approx(3 * 0.25 + 4 * 0.75)
    assert backlog[(T + 1, "b")]["sent_seconds"] == pytest.approx(0.75)
    assert backlog[(T + 1, "b")]["peak"] == 1
    assert second["peak"] == 5
    assert (T + 2, ALL_TYPES) not in backlog  # the second of the last sample is not over yet
    assert set(STATES) == {"open", "ready", "sent", "claimed"}


def test_a_gap_longer_than_max_gap_is_not_filled_in(tmp_path: Path) -> None:
    clock = Clock(T)
    recorder = _recorder(tmp_path, clock)
    recorder.sample({"a": (5, 0, 0, 0)}, at=T + 0.0)
    recorder.sample({"a": (5, 0, 0, 0)}, at=T + 0.5)
    recorder.sample({"a": (5, 0, 0, 0)}, at=T + 3.0)  # 2.5 s later: nobody looked
    recorder.sample({}, at=T + 4.0)
    backlog = _backlog(recorder.flush(now=T + 4.0))
    assert backlog[(T, ALL_TYPES)]["covered_seconds"] == pytest.approx(0.5)
    assert (T + 1, ALL_TYPES) not in backlog and (T + 2, ALL_TYPES) not in backlog
    assert backlog[(T + 3, ALL_TYPES)]["event_seconds"] == pytest.approx(5.0)


def test_counts_per_second_source_type_status_and_code(tmp_path: Path) -> None:
    clock = Clock(T + 0.1)
    recorder = _recorder(tmp_path, clock)
    recorder.count("demo", 202, "accepted", {"a": 3, "b": 1})
    recorder.count("demo", 202, "accepted", {"a": 1})
    recorder.count("demo", 429, "rate_limited")
    recorder.count(UNKNOWN, 408, "request_timeout")
    clock.now = T + 1.2
    recorder.count("demo", 503, "inbox_full")  # the next second: not flushed yet
    rows = [r for r in recorder.flush() if r["kind"] == "ingress"]
    got = {(r["source"], r["event_type"], r["status"]): (r["deliveries"], r["events"]) for r in rows}
    # A delivery counts once (under its first type); its events count under each type.
    assert got == {
        ("demo", "a", 202): (2, 4),
        ("demo", "b", 202): (0, 1),
        ("demo", UNKNOWN, 429): (1, 0),
        (UNKNOWN, UNKNOWN, 408): (1, 0),
    }
    clock.now = T + 2.0
    later = [r for r in recorder.flush() if r["kind"] == "ingress"]
    assert [(r["at"], r["status"]) for r in later] == [(T + 1, 503)]


def test_records_land_in_one_file_per_minute_and_read_back(tmp_path: Path) -> None:
    clock = Clock(T + 59.5)
    recorder = _recorder(tmp_path, clock)
    for tenth in range(20):  # T+59.5 → T+61.4: across a minute's edge
        recorder.sample({"a": (1, 0, 0, 0)}, at=T + 59.5 + tenth / 10)
    clock.now = T + 61.5
    written = recorder.flush()
    files = [path.name for _, path in sample_files(tmp_path)]
    assert files == ["20270115T0800.w1.jsonl", "20270115T0801.w1.jsonl"]
    assert sum(len(read_records(path)) for _, path in sample_files(tmp_path)) == len(written)
    (tmp_path / "20270115T0801.w1.jsonl").open("ab").write(b'{"kind": "backl')  # a torn last line
    assert len(read_records(tmp_path / "20270115T0801.w1.jsonl")) == sum(1 for r in written if r["at"] >= T + 60)
