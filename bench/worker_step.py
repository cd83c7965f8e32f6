"""Worker step benchmark: `process_step` alone (claim → decode → handle → Arrow → DuckDB insert → complete).

It answers: how many events per second, and how many CPU milliseconds per event, does one worker step cost
on batched loads, without Prefect or the gateway process in the way? The spool holds real events: demo
deliveries signed with the Standard Webhooks scheme, verified and validated by the gateway's own code
(`verify`, `parse_delivery`), written as sealed batches by the folder spool. Each step takes
`--batches-per-step` batches of one type into a real DuckDB file in a temporary folder. CPU is the process's
(every thread: DuckDB's too). The digest is a hash of every stored row but its per-run times and batch ids:
the same on every run and every commit, unless what is stored changed.

    uv run python bench/worker_step.py            # batch sizes 100 and 1,000, 3 runs; writes
                                                  # bench/results/worker_step.json
    uv run python bench/worker_step.py --quick    # a few seconds, for CI
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from bench.results import write_results  # noqa: E402
from flowhook.demo import demo_event  # noqa: E402
from flowhook.events import Catalog, Event, load_catalog  # noqa: E402
from flowhook.gateway.deliveries import parse_delivery  # noqa: E402
from flowhook.gateway.schemes import sign, signing_key, verify_with_keys  # noqa: E402
from flowhook.sources.webhook import SignatureConfig  # noqa: E402
from flowhook.spool import BatchRef, Spool  # noqa: E402
from flowhook.store import DuckDBStore  # noqa: E402
from flowhook.worker.config import RetryPolicy  # noqa: E402
from flowhook.worker.steps import process_step  # noqa: E402

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
SECRET = "whsec_" + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
DIGEST_SQL = """
SELECT id, type, source, occurred, received, status, error, data, result, attempts
FROM events ORDER BY id
"""


def accepted_events(count: int, *, per_delivery: int = 100, seed: int = 0) -> dict[str, list[Event]]:
    """`count` events as the gateway accepts them, by type: signed deliveries, verified, then validated."""
    rng = random.Random(seed)
    scheme = SignatureConfig()
    keys = [signing_key(scheme, SECRET)]
    by_type: dict[str, list[Event]] = defaultdict(list)
    catalog = load_catalog()
    for n in range(0, count, per_delivery):
        body = orjson.dumps([demo_event(rng, T0) for _ in range(min(per_delivery, count - n))])
        headers = sign(scheme, body, SECRET, msg_id=f"msg_{seed}_{n}", timestamp=T0.timestamp())
        verified = verify_with_keys(scheme, body, headers, keys, now=T0.timestamp())
        for event in parse_delivery(
            body,
            catalog=catalog,
            source="demo",
            delivery_id=verified.delivery_id or headers["webhook-id"],
            signed_at=verified.signed_at or T0,
            received=T0,
        ):
            by_type[event.type].append(event)
    return by_type


def spool_batches(spool: Spool, by_type: dict[str, list[Event]], batch_size: int) -> dict[str, list[BatchRef]]:
    """Every type's events as sealed batches of `batch_size`, by type."""
    refs: dict[str, list[BatchRef]] = defaultdict(list)
    for event_type, events in by_type.items():
        for start in range(0, len(events), batch_size):
            refs[event_type].append(spool.write_batch(events[start : start + batch_size]))
    return refs


def run_once(by_type: dict[str, list[Event]], *, batch_size: int, per_step: int, catalog: Catalog) -> dict[str, Any]:
    """Spool the events, then process them in steps of `per_step` batches; the figures and the stored digest."""
    with tempfile.TemporaryDirectory(prefix="flowhook-bench-step-") as tmp:
        spool = Spool(Path(tmp) / "spool")
        store = DuckDBStore(Path(tmp) / "flowhook.duckdb", catalog=catalog)
        refs = spool_batches(spool, by_type, batch_size)
        store.count_events()  # the file and its schema exist before the clock starts, as in a running pipeline
        stored = steps = 0
        wall, cpu = time.perf_counter(), time.process_time()
        for batches in refs.values():
            for start in range(0, len(batches), per_step):
                step = process_step(
                    batches[start : start + per_step],
                    owner="bench",
                    spool=spool,
                    store_to=store,
                    catalog=catalog,
                    policy_for_type=lambda _: RetryPolicy(attempts=1),
                )
                stored += step.inserted
                steps += 1
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        digest = hashlib.sha256(orjson.dumps(store.query(DIGEST_SQL), default=str)).hexdigest()[:16]
    return {
        "events": stored,
        "steps": steps,
        "wall_s": wall,
        "cpu_s": cpu,
        "events_per_s": stored / wall,
        "cpu_ms_per_event": 1000 * cpu / stored,
        "digest": digest,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000, help="events per run (split by type)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000], help="batch sizes")
    parser.add_argument("--batches-per-step", type=int, default=10, help="batches one step takes")
    parser.add_argument("--repeat", type=int, default=3, help="runs per batch size")
    parser.add_argument("--quick", action="store_true", help="2,000 events, one run, no results file")
    args = parser.parse_args()
    if args.quick:
        args.events, args.repeat = 2_000, 1
    catalog = load_catalog()
    by_type = accepted_events(args.events)
    rows = []
    print(f"{'batch':>6} {'run':>3} {'events':>7} {'steps':>5} {'events/s':>9} {'CPU ms/ev':>9}  digest")
    for size in args.sizes:
        for run in range(args.repeat):
            figures = run_once(by_type, batch_size=size, per_step=args.batches_per_step, catalog=catalog)
            rows.append({"batch_size": size, "run": run, **figures})
            print(
                f"{size:>6} {run:>3} {figures['events']:>7} {figures['steps']:>5} "
                f"{figures['events_per_s']:>9.0f} {figures['cpu_ms_per_event']:>9.4f}  {figures['digest']}"
            )
    summary = {}
    for size in args.sizes:
        runs = [row for row in rows if row["batch_size"] == size]
        rates = [row["events_per_s"] for row in runs]
        cpus = [row["cpu_ms_per_event"] for row in runs]
        summary[str(size)] = {
            "events_per_s_best": max(rates),
            "events_per_s_median": statistics.median(rates),
            "cpu_ms_per_event_best": min(cpus),
            "cpu_ms_per_event_median": statistics.median(cpus),
            "digests": sorted({row["digest"] for row in runs}),
        }
        s = summary[str(size)]
        print(
            f"batch {size:>5}: {s['events_per_s_best']:.0f} / {s['events_per_s_median']:.0f} events/s (best / median), "
            f"{s['cpu_ms_per_event_best']:.4f} / {s['cpu_ms_per_event_median']:.4f} CPU ms/event"
        )
    if not args.quick:
        path = write_results(
            "worker_step",
            {
                "events_per_run": args.events,
                "batches_per_step": args.batches_per_step,
                "runs": rows,
                "summary": summary,
            },
        )
        print(f"[bench] wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
