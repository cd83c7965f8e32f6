"""Concurrent writers benchmark: rows/s of 1, 2 and 4 writer processes, DuckLake (PostgreSQL catalog) against the
local DuckDB file, and what the DuckLake store's advisory write lock costs.

Each run starts W spawned processes on a fresh store. Each opens the store (untimed: DuckLake's attach takes about
a second), builds its batches (1,000 rows of new, distinct ids, as `bench/store_write.py` makes them), waits at a
barrier, then writes them one `write_events` call each. Rows/s is all rows over the time from the barrier to the
last writer's end; the figure is the median of `--runs` runs. The lock's cost is told three ways: one uncontended
take-and-release; how long a write holds it (the ceiling of serialised writes is 1/hold); and 4 writers' rows/s
with the lock switched off (unsafe in general, exact here only because no two writers share an id).
The last part shows why compaction must run often: one writer's per-batch time as the files pile up, then after
`compact`.

    uv run python bench/ducklake_writers.py                    # 20 batches a writer, median of 3
    uv run python bench/ducklake_writers.py --batches 5 --runs 1   # a quick look
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from store_write import make_events  # noqa: E402

from flowhook.store import DuckDBStore, DuckLakeStore, EventStore, compact  # noqa: E402
from flowhook.store.ducklake_store import WRITE_LOCK_KEY  # noqa: E402

SPAWN = multiprocessing.get_context("spawn")
ROWS = 1_000
STORED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class UnlockedLake(DuckLakeStore):
    """The DuckLake store without its write lock: for measuring the lock, never for use (ids would double)."""

    @contextmanager
    def _locked(self, lake: Any) -> Iterator[None]:
        yield


def _open(kind: str, where: dict[str, str]) -> EventStore:
    if kind == "duckdb":
        return DuckDBStore(Path(where["path"]), lock_timeout=300)
    cls = UnlockedLake if kind == "ducklake-unlocked" else DuckLakeStore
    return cls(where["catalog"], where["path"], lock_timeout=300)


def _writer(kind: str, where: dict[str, str], writer: int, batches: int, start: Barrier, out: Any) -> None:
    store = _open(kind, where)
    store.count_events()  # the file made, the lake attached: not timed
    work = [make_events(ROWS, seed=writer * 100_000 + b * ROWS + 1) for b in range(batches)]
    start.wait(300)
    began = time.perf_counter()
    inserted = sum(store.write_events(batch, stored=STORED) for batch in work)
    out.put((began, time.perf_counter(), inserted))


@contextmanager
def _catalog(admin: str) -> Iterator[str]:
    """A new PostgreSQL database for one run's DuckLake catalog, dropped afterwards."""
    name = f"flowhook_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name}")
    try:
        yield make_conninfo(admin, dbname=name)
    finally:
        with psycopg.connect(admin, autocommit=True) as con:
            con.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def one_run(kind: str, writers: int, batches: int, admin: str, workdir: Path) -> float:
    """Rows/s of `writers` processes writing `batches` batches each into a fresh store of `kind`."""
    run = workdir / uuid.uuid4().hex[:8]
    with nullcontext("") if kind == "duckdb" else _catalog(admin) as catalog:
        where = {"path": str(run / "events.duckdb" if kind == "duckdb" else run / "lake"), "catalog": catalog}
        if kind != "duckdb":  # the catalog's tables, once, before the writers race to attach
            DuckLakeStore(catalog, where["path"]).count_events()
        start, out = SPAWN.Barrier(writers), SPAWN.Queue()
        procs = [SPAWN.Process(target=_writer, args=(kind, where, w, batches, start, out)) for w in range(writers)]
        for proc in procs:
            proc.start()
        results = [out.get(timeout=900) for _ in procs]
        for proc in procs:
            proc.join(60)
        if kind != "duckdb":
            DuckLakeStore(catalog, where["path"]).close()
    inserted = sum(n for _, _, n in results)
    if inserted != writers * batches * ROWS:
        raise AssertionError(f"{kind}: {inserted} rows inserted, not {writers * batches * ROWS}")
    return inserted / (max(end for _, end, _ in results) - min(began for began, _, _ in results))


def lock_round_trip(catalog: str, repeat: int = 300) -> float:
    """Seconds of one uncontended take-and-release of the advisory write lock, as the store does it."""
    with psycopg.connect(catalog) as session:
        began = time.perf_counter()
        for _ in range(repeat):
            session.execute("SELECT set_config('lock_timeout', '120000ms', true)")
            session.execute("SELECT pg_advisory_xact_lock(%s)", [WRITE_LOCK_KEY])
            session.rollback()
        return (time.perf_counter() - began) / repeat


def hold_and_decay(admin: str, workdir: Path, batches: int) -> dict[str, Any]:
    """One writer: how long a write holds the lock, per-batch seconds as files pile up, and after compaction."""
    with _catalog(admin) as catalog:
        store = DuckLakeStore(catalog, workdir / "decay")
        store.count_events()
        held: list[float] = []
        real = store._locked

        @contextmanager
        def timed(lake: Any) -> Iterator[None]:
            with real(lake):
                began = time.perf_counter()
                yield
                held.append(time.perf_counter() - began)

        store._locked = timed  # type: ignore[method-assign]
        seconds = []
        for b in range(batches):
            batch = make_events(ROWS, seed=b * ROWS + 1)
            began = time.perf_counter()
            store.write_events(batch, stored=STORED)
            seconds.append(time.perf_counter() - began)
        began = time.perf_counter()
        done = compact(store, keep=timedelta(0))
        compaction = time.perf_counter() - began
        after = []
        for b in range(10):
            batch = make_events(ROWS, seed=10**8 + b * ROWS)
            began = time.perf_counter()
            store.write_events(batch, stored=STORED)
            after.append(time.perf_counter() - began)
        store.close()
    tenth = max(batches // 10, 1)
    return {
        "hold": statistics.median(held),
        "first": statistics.median(seconds[:tenth]),
        "last": statistics.median(seconds[-tenth:]),
        "after": statistics.median(after),
        "compaction": compaction,
        "merged": done.files_merged,
        "batches": batches,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=20, help="batches of 1,000 rows per writer and run")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (the median is shown)")
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--decay-batches", type=int, default=200, help="batches of the one-writer file pile-up")
    parser.add_argument(
        "--postgres",
        default="host=127.0.0.1 port=5432 user=postgres dbname=postgres",
        help="a role that may create databases (one per run, dropped after)",
    )
    args = parser.parse_args()
    print(f"{args.batches} batches of {ROWS:,} rows per writer, median of {args.runs} runs; rows/s")
    rates: dict[tuple[str, int], float] = {}
    with tempfile.TemporaryDirectory(prefix="ducklake-writers-") as tmp:
        workdir = Path(tmp)
        kinds = [(kind, w) for kind in ("duckdb", "ducklake") for w in args.writers]
        kinds.append(("ducklake-unlocked", max(args.writers)))
        for kind, writers in kinds:
            samples = [one_run(kind, writers, args.batches, args.postgres, workdir) for _ in range(args.runs)]
            rates[kind, writers] = statistics.median(samples)
            spread = f"{min(samples):,.0f}–{max(samples):,.0f}"
            print(f"  {kind:<18} {writers} writer(s): {rates[kind, writers]:>9,.0f}   ({spread})", flush=True)
        for writers in args.writers:
            ratio = rates["ducklake", writers] / rates["duckdb", writers]
            print(f"  ducklake / duckdb file at {writers} writer(s): {ratio:.2f}")
        with _catalog(args.postgres) as catalog:
            DuckLakeStore(catalog, workdir / "lock").count_events()
            trip = lock_round_trip(catalog)
            DuckLakeStore(catalog, workdir / "lock").close()
        most = max(args.writers)
        locked, unlocked = rates["ducklake", most], rates["ducklake-unlocked", most]
        print(f"advisory lock: {trip * 1000:.2f} ms to take and release, uncontended")
        print(f"  {most} writers: {locked:,.0f} rows/s with it, {unlocked:,.0f} without ({locked / unlocked:.0%})")
        decay = hold_and_decay(args.postgres, workdir, args.decay_batches)
        print(
            f"  a write holds it {decay['hold'] * 1000:.0f} ms (median, one writer): serialised writes top out at "
            f"{1 / decay['hold']:.0f} batches/s"
        )
        print(
            f"files pile up: one writer's batch takes {decay['first'] * 1000:.0f} ms at first, "
            f"{decay['last'] * 1000:.0f} ms after {decay['batches']} batches (a file each); "
            f"compaction ({decay['merged']} files merged, {decay['compaction']:.1f} s) brings it to "
            f"{decay['after'] * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
