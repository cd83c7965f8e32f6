"""Store write benchmark: `DuckDBStore.write_events` against DuckDB's raw Arrow insert of the same rows.

It answers: how close does the store's idempotent, locked bulk write come to DuckDB's own ceiling?
"Raw" is `INSERT INTO t SELECT * FROM arrow` into a fresh file and a fresh table of the Arrow table's
column types with no key, timed around the INSERT alone. "Store" is the whole `write_events` call
(Arrow conversion, dedup, lock, open, schema, insert, close) of a second batch into a store that
already holds `existing` other rows, so the cost of skipping stored ids is real. Every store write is then
repeated, and must insert 0 rows: otherwise the script exits 1. The breakdown times `to_arrow` and an
empty open/close alone; "rest" is the write less those two (inside the write, Arrow building overlaps the insert).

    uv run python bench/store_write.py                       # 100k rows into 100k, 5 repeats
    uv run python bench/store_write.py --existing 1000000    # 100k rows into 1M
    uv run python bench/store_write.py --quick               # a few seconds, for CI
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from flowhook.store import DuckDBStore, StoredEvent, to_arrow  # noqa: E402

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
TYPES = ("user_request", "order_paid", "page_view", "signup")
CHUNK = 100_000  # prefill in batches of this size, as the pipeline would


class IdempotencyError(AssertionError):
    """A write of ids already stored inserted rows, or a fresh batch did not insert all of its rows."""


def make_events(n: int, *, seed: int = 0) -> list[StoredEvent]:
    """`n` events as `processing` stores them: `msg_<uuid hex>:<i>` ids, small data and result dicts, and
    per-event `occurred`/`received` but per-batch `emitted` (a spool batch of 500) and per-run `started`/`stored`.
    """
    run = T0 + timedelta(seconds=seed % 1000)
    events = []
    for i in range(n):
        at = T0 + timedelta(microseconds=i * 997 + seed)
        status = "failed" if i % 50 == 0 else "ok"
        events.append(
            StoredEvent(
                id=f"msg_{uuid.uuid4().hex}:{i % 3}",
                type=TYPES[i % len(TYPES)],
                source="webhook",
                occurred=at,
                received=at + timedelta(milliseconds=3),
                emitted=T0 + timedelta(seconds=i // 500),
                started=run,
                stored=run + timedelta(seconds=1),
                batch_id=f"batch-{seed}-{i // 500}",
                flow_run_id=f"run-{uuid.UUID(int=seed).hex}",
                status=status,
                error="ValueError: bad amount" if status == "failed" else None,
                data={"user_id": f"u{i % 9973}", "amount": i % 1000 / 10, "currency": "EUR", "n": i, "ok": True},
                result=None if status == "failed" else {"latency_ms": i % 250, "score": 0.5, "label": "accepted"},
            )
        )
    return events


def _raw_insert_seconds(events: list[StoredEvent], workdir: Path) -> float:
    table = to_arrow(events)
    path = workdir / "raw.duckdb"
    path.unlink(missing_ok=True)
    con = duckdb.connect(str(path))
    try:
        con.register("incoming", table)
        con.execute("CREATE TABLE t AS SELECT * FROM incoming LIMIT 0")
        began = time.perf_counter()
        con.execute("INSERT INTO t SELECT * FROM incoming")
        return time.perf_counter() - began
    finally:
        con.close()


def _prefilled_store(existing: int, workdir: Path) -> Path:
    path = workdir / "template.duckdb"
    store = DuckDBStore(path)
    for start in range(0, existing, CHUNK):
        size = min(CHUNK, existing - start)
        if store.write_events(make_events(size, seed=start + 1)) != size:
            raise IdempotencyError("prefill: a fresh batch did not insert all of its rows")
    return path


def _copy_synced(source: Path, target: Path) -> None:
    # Synced, or the store's first commit would also flush the copy's dirty pages and be timed for it.
    shutil.copyfile(source, target)
    fd = os.open(target, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def measure(rows: int, repeat: int, *, existing: int | None = None) -> dict[str, float]:
    """Median rates (rows/s) and seconds over `repeat` runs of `rows` rows into a store of `existing` rows."""
    existing = rows if existing is None else existing
    samples: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="store-write-") as tmp:
        workdir = Path(tmp)
        template = _prefilled_store(existing, workdir)
        for _ in range(repeat):
            events = make_events(rows, seed=10**9)
            raw = _raw_insert_seconds(events, workdir)
            began = time.perf_counter()
            to_arrow(events)
            arrow = time.perf_counter() - began
            path = workdir / "store.duckdb"
            _copy_synced(template, path)
            store = DuckDBStore(path)
            began = time.perf_counter()
            with store.connect():
                pass
            open_close = time.perf_counter() - began
            began = time.perf_counter()
            inserted = store.write_events(events)
            write = time.perf_counter() - began
            again = store.write_events(events)
            if inserted != rows or again != 0:
                raise IdempotencyError(f"first write inserted {inserted} of {rows}, the repeat {again} (want 0)")
            for key, value in {
                "raw_seconds": raw,
                "write_seconds": write,
                "to_arrow_seconds": arrow,
                "open_ddl_close_seconds": open_close,
                # Arrow building overlaps the insert inside write_events, so this is not the insert alone.
                "rest_seconds": max(0.0, write - arrow - open_close),
                "rewrite_seconds": time.perf_counter() - began - write,
            }.items():
                samples.setdefault(key, []).append(value)
    result = {key: statistics.median(values) for key, values in samples.items()}
    result["raw_rows_per_s"] = rows / result["raw_seconds"]
    result["write_rows_per_s"] = rows / result["write_seconds"]
    result["ratio"] = result["write_rows_per_s"] / result["raw_rows_per_s"]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows per measured batch")
    parser.add_argument("--existing", type=int, default=None, help="rows already in the store (default: --rows)")
    parser.add_argument("--repeat", type=int, default=5, help="runs; medians are printed")
    parser.add_argument("--quick", action="store_true", help="10k rows, 2 runs: checks idempotency, not speed")
    args = parser.parse_args()
    rows, repeat = (10_000, 2) if args.quick else (args.rows, args.repeat)
    existing = rows if args.existing is None else args.existing
    try:
        result = measure(rows, repeat, existing=existing)
    except IdempotencyError as exc:
        print(f"FAIL idempotency: {exc}", file=sys.stderr)
        return 1
    print(f"{rows:,} rows into a store of {existing:,} rows, median of {repeat}")
    print(f"  raw Arrow insert  {result['raw_rows_per_s']:>12,.0f} rows/s  ({result['raw_seconds']:.3f} s)")
    print(f"  write_events      {result['write_rows_per_s']:>12,.0f} rows/s  ({result['write_seconds']:.3f} s)")
    print(f"  ratio             {result['ratio']:>12.2f}")
    print(
        "  breakdown (s)     "
        + "  ".join(
            f"{k.removesuffix('_seconds')} {v:.3f}"
            for k, v in result.items()
            if k.endswith("_seconds") and k not in ("raw_seconds", "write_seconds")
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
