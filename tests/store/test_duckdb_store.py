"""DuckDBStore on a real file: schema, idempotent bulk writes, the cross-process lock, time windows."""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from types import MappingProxyType
from typing import Any

import duckdb
import orjson
import pytest

from flowhook.store import EVENT_SCHEMA, DuckDBStore, EventStore, StoredEvent, StoreLockTimeout
from flowhook.store.duckdb_store import REPORT_TABLES
from flowhook.store.schema import STORE_TABLES
from tests.store.backends import StoreSpec

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


def store_columns(store: EventStore, table: str) -> list[str]:
    rows = store.query(
        "SELECT column_name FROM information_schema.columns WHERE table_catalog = current_database() "
        "AND table_name = ? ORDER BY ordinal_position",
        [table],
    )
    return [name for (name,) in rows]


def test_schema_is_created_once_and_reopening_keeps_data(store_spec: StoreSpec) -> None:
    if store_spec.kind == "duckdb":  # and the file's folder is made on the way
        store_spec = replace(store_spec, path=store_spec.path.parent / "nested" / store_spec.path.name)
    store = store_spec.open()
    assert store.write_events([make_event("a")]) == 1
    with store_spec.reopen().connect():
        pass  # the second open runs the DDL again
    assert store.count_events() == 1
    assert store_columns(store, "events") == EVENT_SCHEMA.names


def test_write_then_count_by_type(store: EventStore) -> None:
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


def test_timestamps_round_trip_as_aware_utc(store: EventStore) -> None:
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
    store.write_events([event])

    # In the file they are naive UTC: the +02:00 `occurred` is stored as 10:00:00.123456.
    assert store.query("SELECT type, occurred, received, emitted, started, stored FROM events") == [
        (
            "user_request",
            datetime(2024, 5, 1, 10, 0, 0, 123456),
            datetime(2024, 5, 1, 10, 0, 2),
            datetime(2024, 5, 1, 10, 0, 3),
            datetime(2024, 5, 1, 10, 0, 4),
            datetime(2024, 5, 1, 10, 0, 5),
        )
    ]
    [(got_occurred,)] = store.query("SELECT occurred FROM events")
    assert got_occurred.replace(tzinfo=UTC) == occurred


def test_json_columns_round_trip(store: EventStore) -> None:
    data = {"user": "zoë", "tags": ["a", "b"], "nested": MappingProxyType({"x": 1.5, "none": None})}
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


def test_writing_the_same_batch_twice_inserts_nothing_the_second_time(store: EventStore) -> None:
    batch = [make_event(f"e{i}") for i in range(5)]
    assert store.write_events(batch) == 5
    assert store.write_events(batch) == 0
    assert store.count_events() == 5


def test_duplicates_within_a_batch_are_stored_once_keeping_the_first(store: EventStore) -> None:
    batch = [make_event("a", data={"copy": 1}), make_event("b"), make_event("a", data={"copy": 2})]
    assert store.write_events(batch) == 2
    assert store.count_events() == 2
    assert store.query("SELECT data FROM events WHERE id = 'a'") == [('{"copy":1}',)]


def test_a_mixed_batch_inserts_only_the_new_ids(store: EventStore) -> None:
    assert store.write_events([make_event("a"), make_event("b")]) == 2
    mixed = [make_event("b", data={"new": True}), make_event("c"), make_event("d")]
    assert store.write_events(mixed) == 2
    assert store.count_events() == 4
    assert store.query("SELECT data FROM events WHERE id = 'b'") == [('{"n":1}',)]  # the old row stays


def test_insert_count_is_exact_for_a_large_half_old_batch(store: EventStore) -> None:
    # The returned figure must be DuckDB's rows-inserted, not the batch size, at a realistic size too.
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


# --- report tables -------------------------------------------------------------------------------------

PLUS_TWO = timezone(timedelta(hours=2))
REPORT_VIEWS = {"event_latency", "dead_letters", "latest_reports", "latest_report_stages", "latest_report_buckets"}
# The `reports` table as flowhook wrote it before the stage and bucket tables existed (commit a86b60f).
OLD_REPORTS_DDL = """
CREATE TABLE IF NOT EXISTS reports (
  report_id VARCHAR NOT NULL, generated_at TIMESTAMP NOT NULL, event_type VARCHAR NOT NULL,
  window_start TIMESTAMP, window_end TIMESTAMP, span_seconds DOUBLE,
  n BIGINT, m BIGINT, arrival_rate DOUBLE, processing_rate DOUBLE, throughput DOUBLE, tau_seconds DOUBLE,
  p50_seconds DOUBLE, p95_seconds DOUBLE, p99_seconds DOUBLE, max_seconds DOUBLE,
  PRIMARY KEY (report_id, event_type))
"""


def columns_of(table: str) -> list[str]:
    return [name for name, _ in REPORT_TABLES[table]]


def stored_rows(store: EventStore, table: str, order_by: str) -> list[dict[str, Any]]:
    """Every row of a report table as a dict over all its declared columns (absent values are None)."""
    names = columns_of(table)
    rows = store.query(f"SELECT {', '.join(names)} FROM {table} ORDER BY {order_by}", reports=True)
    return [dict(zip(names, row, strict=True)) for row in rows]


def full_row(table: str, *given: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A row over all of the table's columns: the given values, then the changes, NULL for the rest."""
    row: dict[str, Any] = dict.fromkeys(columns_of(table))
    for values in given:
        row.update(values)
    return {**row, **changes}


def schema_objects(store: EventStore) -> tuple[set[str], set[str]]:
    here = "database_name = current_database() AND schema_name = 'main'"
    tables = store.query(f"SELECT table_name FROM duckdb_tables() WHERE {here}")
    views = store.query(f"SELECT view_name FROM duckdb_views() WHERE {here} AND NOT internal")
    return {name for (name,) in tables}, {name for (name,) in views}


def one_report(report_id: str, generated_at: datetime) -> dict[str, list[dict[str, Any]]]:
    """A small report: two `reports` rows, one stage row and two bucket rows."""
    return {
        "reports": [
            {"report_id": report_id, "generated_at": generated_at, "event_type": t, "n": n}
            for t, n in (("user_request", 3), ("all", 3))
        ],
        "report_stages": [{"report_id": report_id, "event_type": "all", "stage": "latency", "count": 3}],
        "report_buckets": [
            {"report_id": report_id, "event_type": "all", "bucket_start": generated_at - timedelta(minutes=k)}
            for k in (1, 2)
        ],
    }


def test_a_plain_connect_leaves_the_report_tables_and_views_out(store: EventStore) -> None:
    store.write_events([make_event("a")])
    with store.connect():
        pass
    assert schema_objects(store) == ({"events"}, set())
    with pytest.raises(duckdb.Error, match="reports"):
        store.query("SELECT count(*) FROM reports")

    assert store.query("SELECT count(*) FROM reports", reports=True) == [(0,)]
    assert schema_objects(store) == ({"events", *STORE_TABLES}, REPORT_VIEWS)
    with store.connect(reports=True):
        pass  # the second time finds everything in place
    assert schema_objects(store) == ({"events", *STORE_TABLES}, REPORT_VIEWS)
    assert store.count_events() == 1


def test_report_tables_have_the_declared_columns_types_and_keys(store: EventStore) -> None:
    with store.connect(reports=True):
        pass
    for table, columns in STORE_TABLES.items():  # the report tables and the audits
        declared = [
            (name, kind.removesuffix(" NOT NULL"), "NO" if "NOT NULL" in kind else "YES") for name, kind in columns
        ]
        got = store.query(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_catalog = current_database() AND table_name = ? ORDER BY ordinal_position",
            [table],
        )
        assert got == declared, table
    keys = store.query(
        "SELECT table_name, constraint_column_names FROM duckdb_constraints() "
        "WHERE database_name = current_database() AND constraint_type = 'PRIMARY KEY'"
    )
    # DuckLake has no keys: its upserts MERGE on these columns instead.
    assert dict(keys) == (
        {
            "reports": ["report_id", "event_type"],
            "report_stages": ["report_id", "event_type", "stage"],
            "report_buckets": ["report_id", "event_type", "bucket_start"],
            "audits": ["audited_at"],
            "backlog_samples": ["second_start", "writer", "event_type"],
            "ingress_counts": ["second_start", "writer", "source", "event_type", "status", "code"],
            "gateway_usage": ["second_start", "writer"],
        }
        if isinstance(store, DuckDBStore)
        else {}
    )


def test_write_report_round_trips_all_three_tables_with_nulls_and_naive_utc(store: EventStore) -> None:
    generated = datetime(2024, 5, 1, 12, 30, 0, 250000, tzinfo=PLUS_TWO)  # 10:30:00.25 UTC
    report = {
        "report_id": "r1",
        "generated_at": generated,
        "event_type": "user_request",
        "window_start": T0,
        "window_end": datetime(2024, 5, 1, 10, 30),  # naive: taken as UTC already
        "n": 12,
        "arrival_rate": 0.5,
        "little_verdict": "fails",
        "chart_path": "r1.png",
    }
    stage = {"report_id": "r1", "event_type": "user_request", "stage": "latency", "count": 12, "p99_seconds": 2.5}
    bucket = {
        "report_id": "r1",
        "event_type": "user_request",
        "bucket_start": datetime(2024, 5, 1, 12, 1, tzinfo=PLUS_TWO),
        "arrivals": 3,
        "backlog": 0,
    }
    store.write_report({"reports": [report], "report_stages": [stage], "report_buckets": [bucket]})

    assert stored_rows(store, "reports", "event_type") == [
        full_row(
            "reports",
            report,
            generated_at=datetime(2024, 5, 1, 10, 30, 0, 250000),
            window_start=datetime(2024, 5, 1, 10, 0),
        )
    ]
    assert stored_rows(store, "report_stages", "stage") == [full_row("report_stages", stage)]
    assert stored_rows(store, "report_buckets", "bucket_start") == [
        full_row("report_buckets", bucket, bucket_start=datetime(2024, 5, 1, 10, 1))
    ]


def _write_report_at_plus_two(spec: StoreSpec) -> str:
    """In a fresh process: the session time zone, after writing a report whose times are all +02:00."""
    store = spec.open()
    at = datetime(2024, 5, 1, 12, 0, tzinfo=PLUS_TWO)
    store.write_report(
        {
            "reports": [{"report_id": "r1", "generated_at": at, "event_type": "all", "window_end": at}],
            "report_buckets": [{"report_id": "r1", "event_type": "all", "bucket_start": at}],
        }
    )
    [(zone,)] = store.query("SELECT current_setting('TimeZone')")
    return str(zone)


@pytest.mark.timeout(60)
def test_aware_report_times_are_stored_as_utc_whatever_the_local_time_zone(
    store_spec: StoreSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DuckDB casts an aware value to TIMESTAMP through the session time zone, which it takes from the
    # process's TZ once, at import: so the write runs in a new process started with TZ set.
    monkeypatch.setenv("TZ", "America/New_York")
    with ProcessPoolExecutor(max_workers=1, mp_context=SPAWN) as pool:
        zone = pool.submit(_write_report_at_plus_two, store_spec).result(timeout=50)
    assert zone == "America/New_York"  # else this test would not test anything
    store = store_spec.open()
    ten = datetime(2024, 5, 1, 10, 0)
    assert store.query("SELECT generated_at, window_end FROM reports") == [(ten, ten)]
    assert store.query("SELECT bucket_start FROM report_buckets") == [(ten,)]


def test_write_report_upserts_by_key_and_the_second_write_wins_whole(store: EventStore) -> None:
    row = {"report_id": "r1", "generated_at": T0, "event_type": "user_request", "n": 10, "p95_seconds": 0.5}
    stage = {"report_id": "r1", "event_type": "user_request", "stage": "latency", "count": 10, "mean_seconds": 0.2}
    bucket = {"report_id": "r1", "event_type": "user_request", "bucket_start": T0, "arrivals": 4}
    store.write_report(
        {"reports": [row, {**row, "event_type": "all"}], "report_stages": [stage], "report_buckets": [bucket]}
    )
    later = T0 + timedelta(minutes=1)
    store.write_report(
        {
            "reports": [{"report_id": "r1", "generated_at": later, "event_type": "user_request", "n": 11}],
            "report_stages": [{**stage, "count": 11, "mean_seconds": None}],
            "report_buckets": [{**bucket, "arrivals": 5}],
        }
    )

    assert stored_rows(store, "reports", "event_type") == [
        full_row("reports", row, event_type="all", generated_at=datetime(2024, 5, 1, 10, 0)),
        # The whole row is replaced: p95_seconds, absent the second time, is NULL now.
        full_row("reports", report_id="r1", generated_at=datetime(2024, 5, 1, 10, 1), event_type="user_request", n=11),
    ]
    assert stored_rows(store, "report_stages", "stage") == [
        full_row("report_stages", stage, count=11, mean_seconds=None)
    ]
    assert stored_rows(store, "report_buckets", "bucket_start") == [
        full_row("report_buckets", bucket, bucket_start=datetime(2024, 5, 1, 10, 0), arrivals=5)
    ]


def test_a_key_repeated_within_one_write_keeps_the_last_row(store: EventStore) -> None:
    row = {"report_id": "r1", "generated_at": T0, "event_type": "user_request"}
    store.write_report({"reports": [{**row, "n": 1}, {**row, "n": 2}]})
    assert store.query("SELECT n FROM reports") == [(2,)]


@pytest.mark.parametrize(
    ("tables", "match"),
    [
        ({"report_totals": [{"report_id": "r1"}]}, "unknown report table: report_totals"),
        ({"report_totals": []}, "unknown report table: report_totals"),
        (
            {
                "report_stages": [
                    {"report_id": "r1", "event_type": "all", "stage": "latency", "p96_seconds": 1.0, "p97": 2}
                ]
            },
            "unknown report_stages columns: p96_seconds, p97",
        ),
        (
            {"report_buckets": [{"report_id": "r1", "event_type": "all", "bucket_start": T0}, {"span": "x"}]},
            "unknown report_buckets columns: span",
        ),
    ],
)
def test_an_unknown_table_or_column_is_refused_and_nothing_is_written(
    store: EventStore, tables: dict[str, list[dict[str, Any]]], match: str
) -> None:
    store.write_report(one_report("r0", T0))
    before = {table: stored_rows(store, table, "ALL") for table in REPORT_TABLES}
    # The valid tables come first, so they are inserted before the bad one is seen: the transaction undoes them.
    with pytest.raises(ValueError, match=match):
        store.write_report({**one_report("r1", T0 + timedelta(hours=1)), **tables})
    assert {table: stored_rows(store, table, "ALL") for table in REPORT_TABLES} == before
    store.write_report(one_report("r2", T0))  # and the file and its lock are fine for the next write
    assert store.query("SELECT DISTINCT report_id FROM reports ORDER BY 1") == [("r0",), ("r2",)]


def test_an_old_reports_table_gains_the_new_columns_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "events.duckdb"
    con = duckdb.connect(str(path))
    con.execute(OLD_REPORTS_DDL)
    con.execute(
        "INSERT INTO reports (report_id, generated_at, event_type, n, m, p50_seconds) "
        "VALUES ('old', TIMESTAMP '2024-05-01 09:00:00', 'all', 5, 4, 0.25)"
    )
    con.close()
    old_columns = table_columns(path, "reports")

    store = DuckDBStore(path)
    with store.connect(reports=True):
        pass
    assert table_columns(path, "reports")[: len(old_columns)] == old_columns
    assert set(table_columns(path, "reports")) == set(columns_of("reports"))
    assert schema_objects(store) == ({"events", *STORE_TABLES}, REPORT_VIEWS)
    assert stored_rows(store, "reports", "report_id") == [
        full_row(
            "reports",
            report_id="old",
            generated_at=datetime(2024, 5, 1, 9, 0),
            event_type="all",
            n=5,
            m=4,
            p50_seconds=0.25,
        )
    ]

    new = {
        "report_id": "new",
        "generated_at": T0,
        "event_type": "all",
        "n": 6,
        "little_verdict": "holds",
        "chart_path": "c.png",
    }
    store.write_report({**one_report("new", T0), "reports": [new]})
    store.write_report({"reports": [{**new, "n": 7}]})  # the old table's key still makes this an upsert
    assert [
        (r["report_id"], r["n"], r["little_verdict"], r["chart_path"])
        for r in stored_rows(store, "reports", "report_id")
    ] == [
        ("new", 7, "holds", "c.png"),
        ("old", 5, None, None),
    ]
    assert store.query("SELECT report_id, n FROM latest_reports", reports=True) == [("new", 7)]
    assert store.query("SELECT count(*) FROM latest_report_buckets", reports=True) == [(2,)]


def test_event_latency_has_each_stage_in_seconds(store: EventStore) -> None:
    occurred = datetime(2024, 5, 1, 12, 0, 0, 500000, tzinfo=PLUS_TWO)  # 10:00:00.5 UTC
    times = {
        "received": T0 + timedelta(seconds=1, microseconds=250001),
        "emitted": T0 + timedelta(seconds=3),
        "started": T0 + timedelta(seconds=3, microseconds=700000),
        "stored": T0 + timedelta(seconds=7, microseconds=125000),
    }
    done = make_event("done", occurred=occurred, flow_run_id="run-1", batch_id="b7", **times)
    waiting = make_event("waiting", occurred=occurred, received=times["received"])  # never emitted nor stored
    store.write_events([done, waiting])

    def secs(later: datetime | None, earlier: datetime) -> float | None:
        return None if later is None else (later - earlier).total_seconds()

    expected = {
        event.id: (
            event.type,
            event.status,
            event.batch_id,
            event.flow_run_id,
            secs(event.received, event.occurred),
            None if event.emitted is None else secs(event.emitted, event.received),
            None if event.started is None else secs(event.started, event.emitted),
            None if event.stored is None else secs(event.stored, event.started),
            secs(event.stored, event.received),
            secs(event.stored, event.occurred),
        )
        for event in (done, waiting)
    }
    # By hand, for the stored one: 0.750001, 1.749999, 0.7, 3.425, 5.874999, 6.625.
    assert expected["done"][4:] == pytest.approx((0.750001, 1.749999, 0.7, 3.425, 5.874999, 6.625), abs=1e-9)
    rows = store.query(
        "SELECT id, type, status, batch_id, flow_run_id, sent_seconds, batched_seconds, woken_seconds, "
        "processed_seconds, latency_seconds, end_to_end_seconds FROM event_latency ORDER BY id",
        reports=True,
    )
    assert {event_id: tuple(rest) for event_id, *rest in rows} == expected


def test_latest_report_views_show_only_the_newest_report(store: EventStore) -> None:
    store.write_report(one_report("noon", T0 + timedelta(hours=2)))
    store.write_report(one_report("morning", T0))  # written last, generated first: not the latest

    def latest() -> list[tuple[str, int, int, int]]:
        return store.query(
            "SELECT (SELECT list(DISTINCT report_id) FROM latest_reports), "
            "(SELECT count(*) FROM latest_reports), (SELECT count(*) FROM latest_report_stages), "
            "(SELECT count(*) FROM latest_report_buckets), "
            "(SELECT list(DISTINCT report_id) FROM latest_report_stages), "
            "(SELECT list(DISTINCT report_id) FROM latest_report_buckets)",
            reports=True,
        )

    assert store.query("SELECT count(DISTINCT report_id) FROM report_buckets") == [(2,)]
    assert latest() == [(["noon"], 2, 1, 2, ["noon"], ["noon"])]
    store.write_report(one_report("evening", T0 + timedelta(hours=8)))
    assert latest() == [(["evening"], 2, 1, 2, ["evening"], ["evening"])]


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
