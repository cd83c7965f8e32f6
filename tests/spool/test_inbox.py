"""The gateway's inbox on a real disk: durable appends, group commit, sealing by size, age and close.

No pytest-asyncio here: each test drives its own event loop with `asyncio.run`.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import os
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path, PosixPath
from typing import Any, BinaryIO

import pytest

from flowhook.events import Event
from flowhook.spool import BatchRef, Inbox, InboxUnavailable, Spool, State, new_batch_id
from flowhook.spool import inbox as inbox_module
from flowhook.spool.batches import encode_event
from flowhook.spool.config import BatchPolicy
from tests.factories import make_event


def make_inbox(
    spool: Spool, *, max_events: int = 1000, max_seconds: float = 60.0, hold_seconds: float = 30.0
) -> tuple[Inbox, list[BatchRef]]:
    sealed: list[BatchRef] = []
    policy = BatchPolicy(max_events=max_events, max_seconds=max_seconds, hold_seconds=hold_seconds)
    return Inbox(spool, policy=lambda _: policy, on_sealed=sealed.append, tick_seconds=0.01), sealed


async def until(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


def files(spool: Spool, state: State) -> list[Path]:
    return sorted((spool.root / state).rglob("*.jsonl"))


def events_in(spool: Spool, state: State) -> list[Event]:
    return [event for path in files(spool, state) for event in spool.read(path)]


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


def test_an_appended_event_is_in_the_open_file_when_append_returns(tmp_path: Path) -> None:
    spool = Spool(tmp_path)

    async def scenario() -> None:
        inbox, sealed = make_inbox(spool)
        await inbox.start()
        await inbox.append([make_event(1)])
        assert events_in(spool, State.OPEN) == [make_event(1)]
        await inbox.append([make_event(2), make_event(3)])
        [path] = files(spool, State.OPEN)
        assert spool.read(path) == [make_event(1), make_event(2), make_event(3)]
        assert inbox.open_counts() == {"user_request": 3}
        assert sealed == []
        await inbox.close()

    run(scenario)


def test_each_event_type_has_its_own_batch(tmp_path: Path) -> None:
    spool = Spool(tmp_path)

    async def scenario() -> None:
        inbox, sealed = make_inbox(spool)
        await inbox.start()
        await inbox.append([make_event(1), make_event(2, "data_update"), make_event(3)])
        assert inbox.open_counts() == {"user_request": 2, "data_update": 1}
        await inbox.close()
        assert sorted((ref.event_type, ref.count) for ref in sealed) == [("data_update", 1), ("user_request", 2)]
        for ref in sealed:
            assert {e.type for e in spool.read(spool.path(State.READY, ref.batch_id))} == {ref.event_type}

    run(scenario)


def test_a_batch_is_sealed_when_it_reaches_max_events(tmp_path: Path) -> None:
    spool = Spool(tmp_path)

    async def scenario() -> None:
        inbox, sealed = make_inbox(spool, max_events=3)
        await inbox.start()
        for n in range(7):
            await inbox.append([make_event(n)])
        await until(lambda: len(sealed) == 2)
        assert [ref.count for ref in sealed] == [3, 3]
        assert inbox.open_counts() == {"user_request": 1}
        for ref, expected in zip(sealed, ([0, 1, 2], [3, 4, 5]), strict=True):
            assert ref.event_type == "user_request"
            assert spool.state_of(ref.batch_id) is State.READY
            assert [e.id for e in spool.read(spool.path(State.READY, ref.batch_id))] == [f"e{n}" for n in expected]
        assert events_in(spool, State.OPEN) == [make_event(6)]
        await inbox.close()
        assert [ref.count for ref in sealed] == [3, 3, 1]

    run(scenario)


def test_a_batch_is_sealed_when_it_reaches_max_seconds(tmp_path: Path) -> None:
    spool = Spool(tmp_path)

    async def scenario() -> None:
        inbox, sealed = make_inbox(spool, max_seconds=0.1)
        await inbox.start()
        began = time.monotonic()
        await inbox.append([make_event(1)])
        await inbox.append([make_event(2)])
        await until(lambda: len(sealed) == 1)
        assert time.monotonic() - began >= 0.1
        [ref] = sealed
        assert ref.count == 2
        assert abs((datetime.now(UTC) - ref.sealed).total_seconds()) < 5
        assert spool.read(spool.path(State.READY, ref.batch_id)) == [make_event(1), make_event(2)]
        assert files(spool, State.OPEN) == []
        assert inbox.open_counts() == {}
        assert spool.claim(ref.batch_id) is not None  # a flow run took it
        await inbox.append([make_event(3)])  # a new batch starts
        await until(lambda: len(sealed) == 2)
        assert sealed[1].count == 1
        assert sealed[1].batch_id != ref.batch_id
        await inbox.close()

    run(scenario)


def test_a_batch_keeps_growing_while_the_previous_one_is_unclaimed(tmp_path: Path) -> None:
    spool = Spool(tmp_path)

    async def scenario() -> None:
        inbox, sealed = make_inbox(spool, max_seconds=0.05, hold_seconds=0.6)
        await inbox.start()
        await inbox.append([make_event(1)])
        await until(lambda: len(sealed) == 1)
        began = time.monotonic()
        await inbox.append([make_event(2)])
        await asyncio.sleep(0.3)
        await inbox.append([make_event(3)])
        # Past max_seconds, but the first batch is still waiting for a run: keep filling.
        assert len(sealed) == 1 and inbox.open_counts() == {"user_request": 2}
        await until(lambda: len(sealed) == 2)
        assert time.monotonic() - began >= 0.55  # sealed by hold_seconds
        assert sealed[1].count == 2
        # Once the waiting batches are claimed, the next one is sealed after max_seconds again.
        for ref in sealed:
            assert spool.claim(ref.batch_id) is not None
        began = time.monotonic()
        await inbox.append([make_event(4)])
        await until(lambda: len(sealed) == 3)
        assert time.monotonic() - began < 0.5
        await inbox.close()

    run(scenario)


def test_close_seals_every_open_batch(tmp_path: Path) -> None:
    spool = Spool(tmp_path)

    async def scenario() -> None:
        inbox, sealed = make_inbox(spool)
        await inbox.start()
        await inbox.append([make_event(n) for n in range(4)] + [make_event(9, "data_update")])
        assert sealed == []
        await inbox.close()
        assert sorted(ref.count for ref in sealed) == [1, 4]
        assert files(spool, State.OPEN) == []
        assert len(files(spool, State.READY)) == 2

    run(scenario)


def test_close_without_events_seals_nothing(tmp_path: Path) -> None:
    spool = Spool(tmp_path)

    async def scenario() -> None:
        inbox, sealed = make_inbox(spool)
        assert await inbox.start() == []
        await inbox.close()
        assert sealed == []
        assert spool.counts() == {state.value: 0 for state in State}

    run(scenario)


def test_start_seals_what_a_crash_left_open_and_returns_unforwarded_batches(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    left_open = new_batch_id("user_request")
    spool.path(State.OPEN, left_open).write_bytes(
        encode_event(make_event(1)) + encode_event(make_event(2)) + encode_event(make_event(3))[:15]
    )
    left_ready = new_batch_id("data_update")
    spool.path(State.READY, left_ready).write_bytes(encode_event(make_event(4, "data_update")))
    left_sent = new_batch_id("user_request")
    spool.path(State.SENT, left_sent).write_bytes(encode_event(make_event(5)))

    async def scenario() -> None:
        inbox, sealed = make_inbox(spool)
        pending = await inbox.start()
        assert sorted((ref.batch_id, ref.event_type, ref.count) for ref in pending) == sorted(
            [(left_open, "user_request", 2), (left_ready, "data_update", 1)]
        )
        await inbox.close()
        assert sealed == []  # start() hands them back; it does not call on_sealed

    run(scenario)
    assert spool.state_of(left_open) is State.READY
    assert spool.read(spool.path(State.READY, left_open)) == [make_event(1), make_event(2)]
    assert spool.state_of(left_sent) is State.SENT  # Prefect was told already: the sweeper's business


def test_concurrent_appends_all_land_once_with_fewer_fsyncs_than_appends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # os.fsync is a system call the inbox does not take as a parameter: counting it needs a patch.
    synced: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    spool = Spool(tmp_path)
    appends = 200

    async def scenario() -> None:
        inbox, sealed = make_inbox(spool)
        await inbox.start()
        await asyncio.gather(*(inbox.append([make_event(n)]) for n in range(appends)))
        assert inbox.open_counts() == {"user_request": appends}
        assert len(events_in(spool, State.OPEN)) == appends
        await inbox.close()
        assert sum(ref.count for ref in sealed) == appends

    run(scenario)
    ids = [e.id for e in events_in(spool, State.READY)]
    assert sorted(ids) == sorted(f"e{n}" for n in range(appends))  # every one, each once
    assert len(synced) < appends / 10, f"{len(synced)} fsyncs for {appends} appends: no group commit"


def test_appends_arriving_one_by_one_share_commits_spaced_by_the_commit_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests that arrive apart (as deliveries at a few thousand a second do) are not synced one by one: commits
    start at least `commit_seconds` apart, and each writes a batch file's waiting lines in one call."""
    synced: list[float] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(time.monotonic())
        real_fsync(fd)

    # When each commit writes its lines, on the loop as it starts (fsyncs run on threads: their times jitter).
    written: list[float] = []
    real_write_out = inbox_module._Segment.write_out

    def timed_write_out(segment: Any) -> None:
        written.append(time.monotonic())
        real_write_out(segment)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    monkeypatch.setattr(inbox_module._Segment, "write_out", timed_write_out)
    spool = Spool(tmp_path)
    appends, spacing = 200, 0.01

    async def one(n: int) -> None:
        await asyncio.sleep(n * 0.0002)  # 200 appends 0.2 ms apart: without the interval, about a sync each
        await inbox.append([make_event(n)])

    async def scenario() -> None:
        nonlocal inbox
        inbox = Inbox(
            spool, policy=lambda _: BatchPolicy(max_events=1000), on_sealed=lambda _: None, commit_seconds=spacing
        )
        await inbox.start()
        await asyncio.gather(*(one(n) for n in range(appends)))
        assert len(events_in(spool, State.OPEN)) == appends
        await inbox.close()

    inbox: Inbox
    run(scenario)
    assert sorted(e.id for e in events_in(spool, State.READY)) == sorted(f"e{n}" for n in range(appends))
    gaps = [b - a for a, b in itertools.pairwise(written)]
    assert min(gaps) >= spacing * 0.99, f"two commits {min(gaps) * 1000:.2f} ms apart"
    assert len(synced) < appends / 10, f"{len(synced)} fsyncs for {appends} appends"


def test_appends_spread_over_time_are_each_durable(tmp_path: Path) -> None:
    spool = Spool(tmp_path)

    async def appender(inbox: Inbox, start: int) -> None:
        for n in range(start, start + 10):
            await inbox.append([make_event(n)])
            await asyncio.sleep(0.001)

    async def scenario() -> None:
        inbox, sealed = make_inbox(spool, max_events=7, max_seconds=0.02)
        await inbox.start()
        await asyncio.gather(*(appender(inbox, start) for start in range(0, 100, 10)))
        await inbox.close()
        assert sum(ref.count for ref in sealed) == 100
        counted = {ref.batch_id: ref.count for ref in sealed}
        on_disk = {path.stem: len(spool.read(path)) for path in files(spool, State.READY)}
        assert counted == on_disk

    run(scenario)
    assert sorted(e.id for e in events_in(spool, State.READY)) == sorted(f"e{n}" for n in range(100))


def test_concurrent_appends_never_overfill_a_batch(tmp_path: Path) -> None:
    spool = Spool(tmp_path)

    async def scenario() -> None:
        inbox, sealed = make_inbox(spool, max_events=5)
        await inbox.start()
        await asyncio.gather(*(inbox.append([make_event(n)]) for n in range(12)))
        await inbox.close()
        assert sum(ref.count for ref in sealed) == 12
        assert max(ref.count for ref in sealed) <= 5, [ref.count for ref in sealed]

    run(scenario)


# --- a full disk -----------------------------------------------------------------------------------------


class FullDiskFile:
    """A buffered batch file whose disk fills up on demand, failing as `BufferedWriter` does on ENOSPC.

    Once full, writes are buffered, `flush()` raises and so does `close()` (after closing the file).
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._pending = b""
        self.full = False

    def write(self, data: bytes) -> int:
        if self.full:
            self._pending += data
            return len(data)
        return self._raw.write(data)

    def flush(self) -> None:
        if self._pending:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._raw.flush()

    def fileno(self) -> int:
        return self._raw.fileno()

    def close(self) -> None:
        self._raw.close()
        if self._pending:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class FillingSpool(Spool):
    """A spool whose open batch files can run out of disk space."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.opened: list[FullDiskFile] = []

    def open_path(self, slot: Path, batch_id: str) -> Path:
        path = super().open_path(slot, batch_id)
        spool = self

        class _Path(PosixPath):
            def open(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
                handle = FullDiskFile(PosixPath(self).open(*args, **kwargs))
                spool.opened.append(handle)
                return handle

        return _Path(path)


def test_a_write_on_a_full_disk_is_refused(tmp_path: Path) -> None:
    spool = FillingSpool(tmp_path)

    async def scenario() -> None:
        inbox, _ = make_inbox(spool)
        await inbox.start()
        await inbox.append([make_event(1)])
        spool.opened[0].full = True
        with pytest.raises(InboxUnavailable, match="No space left on device"):
            await inbox.append([make_event(2)])
        assert inbox.open_counts() == {}  # the broken batch takes no more appends
        await inbox.close()

    run(scenario)


def test_after_a_failed_write_the_acknowledged_events_are_still_sealed(tmp_path: Path) -> None:
    spool = FillingSpool(tmp_path)

    async def scenario() -> None:
        inbox, sealed = make_inbox(spool)
        await inbox.start()
        await inbox.append([make_event(1)])  # acknowledged
        spool.opened[0].full = True
        with pytest.raises(InboxUnavailable):
            await inbox.append([make_event(2)])
        try:
            await until(lambda: len(sealed) == 1, timeout=1.0)
        finally:
            await inbox.close()
        [ref] = sealed
        assert ref.count == 1
        assert spool.read(super(FillingSpool, spool).path(State.READY, ref.batch_id)) == [make_event(1)]

    run(scenario)


def test_a_live_inboxs_open_batches_are_never_sealed_by_another_but_a_dead_ones_are(tmp_path: Path) -> None:
    """Two inboxes on one spool, as two gateway processes: each keeps to its own slot; once one is gone without
    closing (its slot's lock dropped, as when its process is killed), the other seals its open batch."""
    spool = Spool(tmp_path)

    async def scenario() -> None:
        first, _ = make_inbox(spool, max_seconds=60.0)
        second, sealed = make_inbox(spool, max_seconds=60.0)
        await first.start()
        await second.start(ready=False)
        await first.append([make_event(1)])
        await second.append([make_event(2)])
        assert await asyncio.to_thread(second._recover_files) == []  # first is alive: its slot is locked
        assert sorted(e.id for e in events_in(spool, State.OPEN)) == ["e1", "e2"]
        assert first._slot is not None
        first._slot._lock.release()  # what the kernel does when first's process dies
        recovered = await asyncio.to_thread(second._recover_files)
        assert [event.id for event in spool.read(spool.path(State.READY, recovered[0]))] == ["e1"]
        assert [e.id for e in events_in(spool, State.OPEN)] == ["e2"]
        assert not first._slot.path.exists()
        await second.close()
        assert files(spool, State.OPEN) == [] and len(sealed) == 1

    run(scenario)
