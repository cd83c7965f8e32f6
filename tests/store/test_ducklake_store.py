"""DuckLakeStore on a real PostgreSQL catalog: concurrent writer processes, the advisory lock, conflicts, compaction.

The store tests that hold for every backend run against DuckLake too (through the `store` fixture); these are
the DuckLake-only ones.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from flowhook.stack import free_port
from flowhook.store import (
    DuckDBStore,
    DuckLakeStore,
    EventStore,
    S3Options,
    StoreLockTimeout,
    compact,
    open_store,
)
from flowhook.store import ducklake_store as ducklake_module
from flowhook.store.ducklake_store import WRITE_LOCK_KEY, retry_conflicts
from tests.store import writers
from tests.store.backends import StoreSpec, fresh_lake
from tests.store.test_duckdb_store import T0, make_event
from tests.store.writers import failed

SPAWN = multiprocessing.get_context("spawn")


def lake(spec: StoreSpec, **options: Any) -> DuckLakeStore:
    store = spec.open(**options)
    assert isinstance(store, DuckLakeStore)
    return store


# --- several writer processes --------------------------------------------------------------------------

WRITERS = 4


@pytest.mark.timeout(120)
def test_writer_processes_store_every_id_exactly_once(lake_spec: StoreSpec) -> None:
    store = lake(lake_spec)
    seeded = [failed(event_id, batch_id="seed") for event_id in writers.replayed_ids()]
    assert store.write_events(seeded) == len(seeded)

    start = SPAWN.Barrier(WRITERS)  # a process argument: a pool's workers could not be handed one
    results: Any = SPAWN.Queue()
    processes = [
        SPAWN.Process(target=writers.write_rounds, args=(lake_spec, writer, start, results))
        for writer in range(WRITERS)
    ]
    for process in processes:
        process.start()
    try:
        inserted = dict(results.get(timeout=100) for _ in processes)
    finally:
        for process in processes:
            process.join(10)
    assert all(isinstance(n, int) for n in inserted.values()), inserted  # else a writer's error
    assert all(process.exitcode == 0 for process in processes)

    # Each id is new once, whoever wrote it first; replacing a stored failure adds no id.
    new_ids = writers.ROUNDS * (writers.BATCH + writers.CONTESTED)
    assert sum(inserted.values()) == new_ids
    assert store.duplicate_ids() == 0
    assert store.count_events() == new_ids + len(seeded)
    # Every id had an ok copy from some writer: the seeded failures were replaced, the contested ids end ok.
    assert store.query("SELECT status, count(*) FROM events GROUP BY ALL") == [("ok", new_ids + len(seeded))]
    assert store.query("SELECT count(*) FROM events WHERE batch_id = 'seed'") == [(0,)]


# --- the write lock ------------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_a_write_waits_for_the_lock_and_times_out_while_reads_go_on(lake_spec: StoreSpec) -> None:
    store = lake(lake_spec, lock_timeout=0.5)
    store.write_events([make_event("a")])
    assert lake_spec.catalog is not None
    with psycopg.connect(lake_spec.catalog, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [WRITE_LOCK_KEY])
        with pytest.raises(StoreLockTimeout, match="DuckLake write lock"):
            store.write_events([make_event("b")])
        assert store.count_events() == 1  # reads take no lock
        assert [letter.event.id for letter in store.dead_letters()] == []
        other.execute("SELECT pg_advisory_unlock(%s)", [WRITE_LOCK_KEY])
    assert store.write_events([make_event("b")]) == 1  # and the store's own session is fine for the next one


def test_a_commit_conflict_is_retried_and_the_write_counts_once(
    lake_spec: StoreSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = lake(lake_spec)
    store.write_events([failed("a"), failed("b"), make_event("c")])
    real_delete = ducklake_module.delete_failed
    calls = 0

    def racing_delete(con: duckdb.DuckDBPyConnection, ids: set[str]) -> None:
        # The first time, a writer that skips the lock (as compaction does) deletes from the table meanwhile:
        # this write's own delete then conflicts at commit, for real, and the whole write runs again.
        nonlocal calls
        calls += 1
        if calls == 1:
            with store.connect() as other:
                other.execute("DELETE FROM events WHERE id = 'b'")
        real_delete(con, ids)

    monkeypatch.setattr(ducklake_module, "delete_failed", racing_delete)
    assert store.write_events([make_event("a", batch_id="replay"), make_event("d")]) == 1
    assert calls == 2
    assert store.query("SELECT id, status, batch_id FROM events ORDER BY id") == [
        ("a", "ok", "replay"),
        ("c", "ok", "batch-1"),
        ("d", "ok", "batch-1"),
    ]


def test_only_commit_conflicts_are_retried_a_bounded_number_of_times(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ducklake_module.time, "sleep", lambda seconds: None)
    calls = 0

    def conflicting(times: int, error: duckdb.Error) -> Any:
        def work() -> str:
            nonlocal calls
            calls += 1
            if calls <= times:
                raise error
            return "done"

        return work

    assert retry_conflicts(conflicting(2, duckdb.TransactionException("Transaction conflict - table"))) == "done"
    assert calls == 3
    calls = 0
    retried = duckdb.IOException("Failed to commit DuckLake transaction: Exceeded the maximum retry count of 10")
    assert retry_conflicts(conflicting(3, retried)) == "done"
    calls = 0
    with pytest.raises(duckdb.TransactionException):
        retry_conflicts(conflicting(100, duckdb.TransactionException("Transaction conflict")))
    assert calls == 8
    calls = 0
    with pytest.raises(duckdb.CatalogException):
        retry_conflicts(conflicting(1, duckdb.CatalogException("Table with name nope does not exist")))
    assert calls == 1


# --- compaction ----------------------------------------------------------------------------------------


def test_compaction_merges_the_small_files_and_keeps_every_row(lake_spec: StoreSpec) -> None:
    store = lake(lake_spec)
    for batch in range(6):
        store.write_events([make_event(f"b{batch}-{i}") for i in range(50)])  # a file each
    store.write_events([failed("x")])  # inlined into the catalog: under 10 rows
    store.write_events([make_event("x")])  # replaces it
    files = sorted(lake_spec.path.rglob("*.parquet"))
    assert len(files) >= 6

    done = compact(store, keep=timedelta(0))
    assert done.files_merged >= 6
    assert done.snapshots_expired > 0
    assert done.files_deleted >= 6
    assert len(list(lake_spec.path.rglob("*.parquet"))) < len(files)
    assert store.count_events() == 301
    assert store.duplicate_ids() == 0
    assert store.query("SELECT status FROM events WHERE id = 'x'") == [("ok",)]
    assert store.write_events([make_event("b0-0"), make_event("new")]) == 1  # and writes go on as before


def test_compaction_keeps_recent_snapshots(lake_spec: StoreSpec) -> None:
    store = lake(lake_spec)
    store.write_events([make_event(f"e{i}") for i in range(20)])
    assert compact(store, keep=timedelta(hours=1)).snapshots_expired == 0


def test_the_compaction_task_compacts_a_lake_and_skips_a_file(
    lake_spec: StoreSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pydantic import SecretStr

    import tasks
    import tasks.compaction
    from flowhook.settings import Settings

    settings = Settings(
        data_dir=tmp_path,
        lock_timeout_seconds=30.0,
        store="ducklake",
        ducklake_catalog=SecretStr(lake_spec.catalog or ""),
        ducklake_data_path=str(lake_spec.path),
    )
    monkeypatch.setattr(tasks, "get_settings", lambda: settings)  # what `tasks.current_store` opens from
    lake(lake_spec).write_events([make_event(f"e{i}") for i in range(20)])
    try:
        done = tasks.compaction.compact_lake.fn(keep_hours=0)
    finally:
        # Its key names S3 options, so the fixture's close (without them) would leave it attached to this
        # process, and every later `duckdb_columns()` here would reach for a dropped catalog database.
        tasks.current_store().close()  # type: ignore[attr-defined]
    assert done is not None and done.snapshots_expired > 0

    settings.store = "duckdb"
    assert tasks.compaction.compact_lake.fn(keep_hours=0) is None


# --- the backend, chosen by one setting ----------------------------------------------------------------


def test_open_store_builds_the_backend_the_setting_names(tmp_path: Path) -> None:
    assert isinstance(open_store(store="duckdb", database=tmp_path / "events.duckdb"), DuckDBStore)
    lake_store = open_store(
        store="ducklake",
        database=tmp_path / "unused.duckdb",
        ducklake_catalog="host=127.0.0.1 password=hunter2 dbname=lake",
        ducklake_data_path=tmp_path / "lake",
        lock_timeout=3,
    )
    assert isinstance(lake_store, DuckLakeStore)
    assert lake_store.data_path == f"{tmp_path / 'lake'}/"
    assert lake_store.lock_timeout == 3
    assert "hunter2" not in repr(lake_store)
    with pytest.raises(ValueError, match="catalog"):
        open_store(store="ducklake", database=tmp_path / "x", ducklake_data_path=tmp_path)
    with pytest.raises(ValueError, match="data path"):
        open_store(store="ducklake", database=tmp_path / "x", ducklake_catalog="dbname=lake")
    with pytest.raises(ValueError, match="unknown store"):
        open_store(store="sqlite", database=tmp_path / "x")  # type: ignore[arg-type]


def test_the_process_duckdb_never_downloads_an_extension_and_keeps_parquet_footers(lake_spec: StoreSpec) -> None:
    with lake(lake_spec).connect() as con:
        settings = con.execute(
            "SELECT name, value FROM duckdb_settings() WHERE name IN "
            "('autoinstall_known_extensions', 'autoload_known_extensions', 'parquet_metadata_cache') ORDER BY name"
        ).fetchall()
    assert settings == [
        ("autoinstall_known_extensions", "false"),
        ("autoload_known_extensions", "false"),
        ("parquet_metadata_cache", "true"),
    ]


def test_duplicate_ids_counts_ids_stored_twice(store: EventStore) -> None:
    store.write_events([make_event("a"), make_event("b")])
    with store.connect() as con:  # broken by hand: writes never do this
        con.execute("INSERT INTO events SELECT * FROM events WHERE id = 'a'")
    assert store.duplicate_ids() == 1


# --- data files on S3 ----------------------------------------------------------------------------------


@pytest.fixture
def s3_bucket() -> Iterator[S3Options]:
    """A bucket `lake` on moto's S3 server, on a free local port; how DuckDB reaches it."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        options = S3Options(
            endpoint=f"127.0.0.1:{port}",
            region="us-east-1",
            key_id="testing",
            secret="testing",
            url_style="path",
            use_ssl=False,
        )
        _s3(options).create_bucket(Bucket="lake")
        yield options
    finally:
        server.stop()


def _s3(options: S3Options) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=f"http://{options.endpoint}",
        aws_access_key_id=options.key_id,
        aws_secret_access_key=options.secret,
        region_name=options.region,
    )


@pytest.mark.timeout(90)
def test_data_files_on_s3(lake_catalog_template: str, s3_bucket: S3Options) -> None:
    with fresh_lake("s3://lake/events", template=lake_catalog_template) as spec:
        assert spec.catalog is not None
        store = DuckLakeStore(spec.catalog, "s3://lake/events", s3=s3_bucket)
        try:
            assert store.write_events([make_event(f"e{i}") for i in range(100)] + [failed("x")], stored=T0) == 101
            assert store.write_events([make_event("x", batch_id="replay"), make_event("e0")]) == 0
            assert store.count_events() == 101
            assert store.query("SELECT status, batch_id FROM events WHERE id = 'x'") == [("ok", "replay")]
            keys = [item["Key"] for item in _s3(s3_bucket).list_objects_v2(Bucket="lake")["Contents"]]
            assert keys and all(key.startswith("events/main/events/") for key in keys)
            assert store.latest_heartbeat(event_type="user_request", source="test") == (T0, T0)
        finally:
            store.close()
