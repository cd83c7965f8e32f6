"""DuckDBStore on a real file: schema, idempotent bulk writes, the cross-process lock, time windows."""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from types import MappingProxyType
from typing import Any

import duckdb
import orjson
import pytest

from flowhook.store import EVENT_SCHEMA, DuckDBStore, StoredEvent, StoreLockTimeout

SPAWN = multiprocessing.get_context("spawn")
T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def make_event(event_id: str, **overrides: Any) -> StoredEvent:
    fields: dict[str, Any] = {
        "id": event_id,
        "type": "user_request",
        "source": "test",
        "occurred": T0,
        "received": T0 + timedelta(seconds=1),
        "emitted": None,
        "started": None,
        "stored": None,
        "batch_id": "batch-1",
        "flow_run_id": None,
        "status": "ok",
        "error": None,
        "data": {"n": 1},
        "result": None,
    }
    fields.update(overrides)
    return StoredEvent(**fields)


def table_columns(path: Path, table: str) -> list[str]:
    con = duckdb.connect(str(path))
    try:
        rows = con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
            [table],
        ).fetchall()
    finally:
        con.close()
    return [name for (name,) in rows]


def test_schema_is_created_once_and_reopening_keeps_data(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "nested" / "events.duckdb")
    assert store.write_events([make_event("a")]) == 1
    with store.connect():
        pass  # the second open runs the DDL again
    assert store.count_events() == 1
    assert table_columns(store.path, "events") == EVENT_SCHEMA.names
    assert table_columns(store.path, "reports")[:3] == ["report_id", "generated_at", "event_type"]


def test_write_then_count_by_type(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "events.duckdb")
    events = [make_event(f"u{i}") for i in range(3)] + [make_event("o1", type="order_paid")]
    assert store.write_events(events) == 4
    assert store.count_events() == 4
    assert store.count_events(event_type="user_request") == 3
    assert store.count_events(event_type="nothing") == 0
    assert store.event_counts() == {"order_paid": 1, "user_request": 3}


def test_empty_write_does_not_touch_the_file(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "events.duckdb")
    assert store.write_events([]) == 0
    assert not store.path.exists()


def test_timestamps_round_trip_as_aware_utc(tmp_path: Path) -> None:
    plus_two = timezone(timedelta(hours=2))
    occurred = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=plus_two)  # 10:00:00.123456Z
    event = make_event(
        "a",
        occurred=occurred,
        received=T0 + timedelta(seconds=2),
        emitted=T0 + timedelta(seconds=3),
        started=T0 + timedelta(seconds=4),
        stored=T0 + timedelta(seconds=5),
    )
    store = DuckDBStore(tmp_path / "events.duckdb")
    store.write_events([event])

    [(event_type, got_occurred, got_received, got_stored)] = store.event_times()
    assert event_type == "user_request"
    assert (got_occurred, got_received, got_stored) == (occurred, event.received, event.stored)
    assert got_occurred.utcoffset() == timedelta(0)
    assert got_occurred.hour == 10 and got_occurred.microsecond == 123456
    # In the file they are naive UTC.
    assert store.query("SELECT occurred, emitted, started FROM events") == [
        (
            datetime(2024, 5, 1, 10, 0, 0, 123456),
            datetime(2024, 5, 1, 10, 0, 3),
            datetime(2024, 5, 1, 10, 0, 4),
        )
    ]


def test_json_columns_round_trip(tmp_path: Path) -> None:
    data = {"user": "zoë", "tags": ["a", "b"], "nested": MappingProxyType({"x": 1.5, "none": None})}
    store = DuckDBStore(tmp_path / "events.duckdb")
    store.write_events(
        [
            make_event("ok", data=data, result={"latency_ms": 12, "ok": True}),
            make_event("failed", status="failed", error="boom", result=None),
        ]
    )
    rows = {
        event_id: (orjson.loads(d), None if r is None else orjson.loads(r), err)
        for event_id, d, r, err in store.query("SELECT id, data, result, error FROM events")
    }
    assert rows["ok"] == (
        {"user": "zoë", "tags": ["a", "b"], "nested": {"x": 1.5, "none": None}},
        {"latency_ms": 12, "ok": True},
        None,
    )
    assert rows["failed"] == ({"n": 1}, None, "boom")
    assert store.query("SELECT data->>'user' FROM events WHERE id = 'ok'") == [("zoë",)]


def test_status_must_be_ok_or_failed() -> None:
    with pytest.raises(ValueError, match="status"):
        make_event("a", status="done")


def test_writing_the_same_batch_twice_inserts_nothing_the_second_time(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "events.duckdb")
    batch = [make_event(f"e{i}") for i in range(5)]
    assert store.write_events(batch) == 5
    assert store.write_events(batch) == 0
    assert store.count_events() == 5


def test_duplicates_within_a_batch_are_stored_once_keeping_the_first(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "events.duckdb")
    batch = [make_event("a", data={"copy": 1}), make_event("b"), make_event("a", data={"copy": 2})]
    assert store.write_events(batch) == 2
    assert store.count_events() == 2
    assert store.query("SELECT data FROM events WHERE id = 'a'") == [('{"copy":1}',)]


def test_a_mixed_batch_inserts_only_the_new_ids(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "events.duckdb")
    assert store.write_events([make_event("a"), make_event("b")]) == 2
    mixed = [make_event("b", data={"new": True}), make_event("c"), make_event("d")]
    assert store.write_events(mixed) == 2
    assert store.count_events() == 4
    assert store.query("SELECT data FROM events WHERE id = 'b'") == [('{"n":1}',)]  # the old row stays


def test_insert_count_is_exact_for_a_large_half_old_batch(tmp_path: Path) -> None:
    # The returned figure must be DuckDB's rows-inserted, not the batch size, at a realistic size too.
    store = DuckDBStore(tmp_path / "events.duckdb")
    assert store.write_events([make_event(f"e{i}") for i in range(0, 10_000, 2)]) == 5_000
    assert store.write_events([make_event(f"e{i}") for i in range(10_000)]) == 5_000
    assert store.count_events() == 10_000


def test_duplicate_ids_counts_repeated_ids(tmp_path: Path) -> None:
    path = tmp_path / "events.duckdb"
    con = duckdb.connect(str(path))  # a file from before the key existed: the check must see repeats
    con.execute("CREATE TABLE events AS SELECT * FROM (VALUES ('a'), ('a'), ('b'), ('c'), ('c'), ('c')) t(id)")
    con.close()
    assert DuckDBStore(path).duplicate_ids() == 2
    store = DuckDBStore(tmp_path / "keyed.duckdb")
    store.write_events([make_event("a"), make_event("a"), make_event("b")])
    assert store.duplicate_ids() == 0


def test_event_times_filters_on_received_or_stored(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "events.duckdb")
    at = {h: datetime(2024, 5, 1, h, 0, tzinfo=UTC) for h in range(8, 14)}
    store.write_events(
        [
            make_event("early", type="t1", received=at[10], stored=at[10] + timedelta(minutes=5)),
            make_event("unstored", type="t2", received=at[11], stored=None),
            make_event("late", type="t3", received=at[9], stored=at[12]),
        ]
    )

    def types(since: datetime | None, until: datetime | None) -> list[str]:
        return [t for t, *_ in store.event_times(since=since, until=until)]

    assert types(None, None) == ["t3", "t1", "t2"]  # ordered by received
    assert types(at[10] + timedelta(minutes=30), at[11] + timedelta(minutes=30)) == ["t2"]
    assert types(datetime(2024, 5, 1, 13, 0, tzinfo=timezone(timedelta(hours=2))), None) == ["t3", "t2"]
    assert types(None, at[9] + timedelta(minutes=30)) == ["t3"]
    assert types(at[10], at[10]) == ["t1"]  # bounds are inclusive
    assert types(at[13], None) == []


def test_report_rows_upsert_on_report_and_type(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "events.duckdb")
    row = {"report_id": "r1", "generated_at": T0, "event_type": "t1", "n": 10, "p95_seconds": 0.5}
    store.write_report_rows([row, {**row, "event_type": "t2"}])
    store.write_report_rows([{**row, "n": 11}])
    assert store.query("SELECT event_type, n, p95_seconds, generated_at FROM reports ORDER BY event_type") == [
        ("t1", 11, 0.5, datetime(2024, 5, 1, 10, 0)),
        ("t2", 10, 0.5, datetime(2024, 5, 1, 10, 0)),
    ]
    with pytest.raises(ValueError, match="p96_seconds"):
        store.write_report_rows([{**row, "p96_seconds": 1.0}])


# --- several processes ---------------------------------------------------------------------------------


def _count_when_free(path: Path, trying: MpEvent, out: Any) -> None:
    trying.set()
    began = time.monotonic()
    count = DuckDBStore(path, lock_timeout=30).count_events()
    out.put((count, time.monotonic() - began))


def _hold_lock(path: Path, holding: MpEvent, release: MpEvent) -> None:
    with DuckDBStore(path).connect():
        holding.set()
        release.wait(30)


@pytest.mark.timeout(60)
def test_a_second_process_waits_while_the_first_holds_the_file(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "events.duckdb")
    store.write_events([make_event("a"), make_event("b")])
    trying, out = SPAWN.Event(), SPAWN.Queue()
    child = SPAWN.Process(target=_count_when_free, args=(store.path, trying, out))
    with store.connect():
        child.start()
        assert trying.wait(20)
        time.sleep(1.0)
        assert child.is_alive(), "the child finished while this process held the lock"
    count, waited = out.get(timeout=20)
    child.join(10)
    assert child.exitcode == 0
    assert count == 2
    assert waited >= 0.8


@pytest.mark.timeout(60)
def test_lock_timeout_raises_store_lock_timeout(tmp_path: Path) -> None:
    path = tmp_path / "events.duckdb"
    holding, release = SPAWN.Event(), SPAWN.Event()
    child = SPAWN.Process(target=_hold_lock, args=(path, holding, release))
    child.start()
    try:
        assert holding.wait(20)
        began = time.monotonic()
        with pytest.raises(StoreLockTimeout, match=r"events\.duckdb\.lock"):
            DuckDBStore(path, lock_timeout=0.2).count_events()
        assert time.monotonic() - began >= 0.2
    finally:
        release.set()
        child.join(10)
    assert child.exitcode == 0
    assert DuckDBStore(path, lock_timeout=5).count_events() == 0  # and it is free again


HAMMER_WORKERS, HAMMER_ROUNDS, HAMMER_BATCH = 4, 50, 20


def _hammer(path: Path, worker: int) -> tuple[list[str], int, bool]:
    """Interleave writes and reads; report the ids whose write returned and the rows it said were new."""
    store = DuckDBStore(path, lock_timeout=60)
    committed: list[str] = []
    inserted = 0
    last_count, monotonic = 0, True
    for rnd in range(HAMMER_ROUNDS):
        ids = [f"w{worker}-r{rnd}-{i}" for i in range(HAMMER_BATCH)]
        # Every worker also writes the round's shared id: exactly one of them may insert it.
        batch = [make_event(i, batch_id=f"w{worker}-r{rnd}") for i in [*ids, f"shared-r{rnd}"]]
        inserted += store.write_events(batch)
        committed.extend(ids)
        count = store.count_events()
        monotonic = monotonic and count >= max(last_count, len(committed))
        last_count = count
    return committed, inserted, monotonic


@pytest.mark.timeout(120)
def test_hammer_many_processes_write_and_read_without_loss_or_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "events.duckdb"
    with ProcessPoolExecutor(max_workers=HAMMER_WORKERS, mp_context=SPAWN) as pool:
        results = list(pool.map(_hammer, [path] * HAMMER_WORKERS, range(HAMMER_WORKERS)))

    committed = [i for ids, _, _ in results for i in ids]
    assert len(committed) == HAMMER_WORKERS * HAMMER_ROUNDS * HAMMER_BATCH
    assert all(monotonic for _, _, monotonic in results), "a reader saw the count go down or miss its own rows"

    store = DuckDBStore(path)
    stored = Counter(i for (i,) in store.query("SELECT id FROM events"))
    shared = {f"shared-r{r}" for r in range(HAMMER_ROUNDS)}
    assert set(stored) == set(committed) | shared
    assert set(stored.values()) == {1}
    assert store.count_events() == len(committed) + len(shared) == sum(n for _, n, _ in results)
    assert store.duplicate_ids() == 0
