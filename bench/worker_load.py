"""Worker load benchmark: the worker's CPU per event at the pipeline's 20,000 events/s, before and after a change.

It answers: what does the worker cost per event, all-in (claim, decode, handle, store, complete), when the
spool fills as the gateway fills it at that rate and the store already holds what the earlier levels left?
The spool gets the demo load's three types (60/30/10 %) sealed every 0.25 s (`BatchPolicy.max_seconds`: four
batches per type per second); each type's run takes one step every `--step-seconds` (`DrainPolicy.step_seconds`)
over what waits, as an awake run does. The store is a real DuckDB file holding 0 or `--existing` rows first.

Each tree (this one, and `--before`, a commit extracted with `git archive`) runs in a child process of its own,
on the same events and the same prefilled file, so the figures sit side by side; CPU is the child's
(`resource.getrusage`, every thread: DuckDB's too), medians of `--repeat` runs.

    uv run python bench/worker_load.py --before main     # writes bench/results/worker_load.json
    uv run python bench/worker_load.py --quick           # this tree alone, 1 s of load, one run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RATE = 20_000  # events per second: bench/pipeline.py's top level, 200 deliveries/s x 100 events
SEALS_PER_SECOND = 4  # BatchPolicy.max_seconds = 0.25


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(args: argparse.Namespace) -> None:
    """Run the steps against the tree at `args.root`; print one JSON line of figures per run."""
    sys.path[:0] = [str(args.root), str(args.root / "src")]
    from bench.worker_step import accepted_events
    from flowhook.events import load_catalog
    from flowhook.spool import Spool
    from flowhook.store import DuckDBStore
    from flowhook.worker.config import RetryPolicy
    from flowhook.worker.steps import process_step

    catalog = load_catalog()
    by_type = accepted_events(RATE * args.seconds, seed=1)
    per_step = round(args.step_seconds * SEALS_PER_SECOND)
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="flowhook-bench-load-") as tmp:
            spool, path = Spool(Path(tmp) / "spool"), Path(tmp) / "flowhook.duckdb"
            if args.prefilled:
                shutil.copy(args.prefilled, path)
            store = DuckDBStore(path, catalog=catalog)
            before = store.count_events()
            plan = []
            for events in by_type.values():
                seal = max(1, -(-len(events) // (args.seconds * SEALS_PER_SECOND)))
                refs = [spool.write_batch(events[i : i + seal]) for i in range(0, len(events), seal)]
                plan += [refs[i : i + per_step] for i in range(0, len(refs), per_step)]
            stored, cpu = 0, _cpu()
            for batches in plan:
                step = process_step(
                    batches,
                    owner="bench",
                    spool=spool,
                    store_to=store,
                    catalog=catalog,
                    policy_for_type=lambda _: RetryPolicy(attempts=1),
                )
                stored += step.inserted
            cpu = _cpu() - cpu
            if store.count_events() != before + stored or store.duplicate_ids() or stored != RATE * args.seconds:
                raise SystemExit(f"stored {stored} of {RATE * args.seconds}, or some twice")
        print(json.dumps({"events": stored, "steps": len(plan), "cpu_s": cpu}), flush=True)


def prefill(path: Path, rows: int) -> None:
    """A store of `rows` rows: real stored events, copied under fresh ids (one insert, as a long-run file)."""
    sys.path[:0] = [str(ROOT), str(ROOT / "src")]
    from bench.worker_step import accepted_events
    from flowhook.events import load_catalog
    from flowhook.spool import Spool
    from flowhook.store import DuckDBStore
    from flowhook.worker.config import RetryPolicy
    from flowhook.worker.steps import process_step

    catalog = load_catalog()
    seed = 2_000
    store = DuckDBStore(path, catalog=catalog)
    with tempfile.TemporaryDirectory(prefix="flowhook-bench-prefill-") as tmp:
        spool = Spool(Path(tmp))
        for events in accepted_events(seed, seed=99).values():
            process_step(
                [spool.write_batch(events)],
                owner="prefill",
                spool=spool,
                store_to=store,
                catalog=catalog,
                policy_for_type=lambda _: RetryPolicy(attempts=1),
            )
    with store.connect() as con:
        con.execute(
            "INSERT INTO events SELECT e.* REPLACE (e.id || '-' || r.n AS id) FROM events AS e, range(1, ?) AS r(n)",
            [rows // seed],
        )


def run_tree(root: Path, *, prefilled: Path | None, args: argparse.Namespace, step_seconds: float) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", "--root", str(root), "--seconds", str(args.seconds)]
    command += ["--repeat", str(args.repeat), "--step-seconds", str(step_seconds)]
    if prefilled is not None:
        command += ["--prefilled", str(prefilled)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    runs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    us = [1e6 * run["cpu_s"] / run["events"] for run in runs]
    return {
        "runs": runs,
        "cpu_us_per_event_median": statistics.median(us),
        "events_per_cpu_s_median": 1e6 / statistics.median(us),
        "steps": runs[0]["steps"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", help="a commit to compare with (extracted with git archive)")
    parser.add_argument("--seconds", type=int, default=3, help="seconds of load per run")
    parser.add_argument("--existing", type=int, default=300_000, help="rows in the prefilled store")
    parser.add_argument("--step-seconds", type=float, nargs="+", default=[1.0], help="step intervals to try")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (the median is kept)")
    parser.add_argument("--quick", action="store_true", help="this tree, 1 s of load, one run, no results file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    parser.add_argument("--prefilled", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.step_seconds = args.step_seconds[0]
        child(args)
        return
    if args.quick:
        args.seconds, args.repeat, args.before, args.existing = 1, 1, None, 20_000
    sys.path[:0] = [str(ROOT)]
    from bench.results import extracted, write_results

    with tempfile.TemporaryDirectory(prefix="flowhook-bench-load-") as tmp, contextlib.ExitStack() as stack:
        trees = {"after": ROOT}
        if args.before:
            trees = {"before": stack.enter_context(extracted(args.before, "src", "bench")), **trees}
        prefilled = Path(tmp) / "prefilled.duckdb"
        prefill(prefilled, args.existing)
        rows = []
        print(f"{'tree':>6} {'store rows':>10} {'step s':>6} {'steps':>5} {'CPU us/event':>12} {'events/CPU-s':>12}")
        for existing, file in ((0, None), (args.existing, prefilled)):
            for step_seconds in args.step_seconds:
                for name, root in trees.items():
                    figures = run_tree(root, prefilled=file, args=args, step_seconds=step_seconds)
                    rows.append({"tree": name, "existing": existing, "step_seconds": step_seconds, **figures})
                    print(
                        f"{name:>6} {existing:>10} {step_seconds:>6g} {figures['steps']:>5} "
                        f"{figures['cpu_us_per_event_median']:>12.1f} {figures['events_per_cpu_s_median']:>12.0f}",
                        flush=True,
                    )
    if not args.quick:
        path = write_results(
            "worker_load",
            {"rate": RATE, "seconds": args.seconds, "before": args.before, "existing": args.existing, "rows": rows},
        )
        print(f"[bench] wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
