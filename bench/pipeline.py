"""End-to-end benchmark: signed webhooks → gateway → Prefect automation → worker flow → DuckDB,
on the real local stack, side by side with the naive path (one event → one flow run), in one run.

It starts the stack `make demo` starts (Prefect server on SQLite, the `flowhook` pool, every
deployment, a worker, the gateway) in a temporary folder, deploys the naive path from
`bench/prefect.yaml`, and measures, in this order:

1. quiet:  per worker type (flowhook's warm fork, then Prefect's process worker; the pool recreated
           between them, bench/quiet.py): Prefect's floor (emit → an empty flow run complete, one at
           a time), single webhooks with no run awake (cold) and with one awake (warm), received →
           stored; CPU-seconds per run start from /proc of the worker's tree; memory per run;
2. naive:  a burst of events through the naive path: completed events/s;
4. levels: open-loop Poisson load from a separate process at each level (events/s stored, ack and
           per-stage latency, flow runs, CPU and peak RSS per part, lost and duplicated);
5. store:  DuckDB's raw Arrow insert rate against flowhook's store write, same rows.

    uv run python bench/pipeline.py             # the full run (~10 min); prints the README table
    uv run python bench/pipeline.py --quick     # ≤ 60 s smoke run for CI: lost = 0 and dup = 0
    uv run python bench/pipeline.py --quiet-only --json bench/results/pipeline.json   # section 1 alone

A full run writes its figures to bench/results/pipeline.json (machine, versions, date, figures).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from bench.harness import Bench  # noqa: E402
from bench.loadgen import Level, run_load  # noqa: E402
from bench.procstats import Sampler  # noqa: E402
from bench.quiet import section as quiet_section  # noqa: E402
from bench.quiet import switch_worker_type  # noqa: E402
from bench.quiet_report import print_quiet, summarise_quiet  # noqa: E402
from bench.results import write_results  # noqa: E402
from bench.timing import STAGE_NAMES, run_end, seconds, stage_stats, stats  # noqa: E402
from flowhook.demo import demo_event  # noqa: E402
from flowhook.events import Event, derive_event_id  # noqa: E402
from flowhook.events.builtin import DATA_UPDATE, SCHEDULED_TICK, USER_REQUEST  # noqa: E402
from flowhook.names import worker_deployment  # noqa: E402
from flowhook.stack import LocalStack, StackConfig, free_port  # noqa: E402

_seconds, _stats, _run_end, _stage_stats = seconds, stats, run_end, stage_stats

QUIET_IDLE_SECONDS = "3"
"""Worker runs of the quiet section stay awake 3 s after their last batch instead of 10: each cold sample
waits for the last run to end, and a warm sample is taken by the awake run within 1.6 s."""


@dataclass(frozen=True)
class Plan:
    floor_samples: int
    quiet_samples: int
    naive_events: int
    levels: list[Level]
    store_rows: int
    drain_timeout: float
    warm_samples: int = 10
    burst_runs: int = 50
    worker_types: tuple[str, ...] = ("flowhook", "process")


FULL = Plan(
    floor_samples=10,
    quiet_samples=20,
    naive_events=20,
    levels=[
        # Steady loads longer than a run takes batches (120 s): the handover to its successor is measured too.
        Level(10, 150, 1),
        Level(100, 150, 1),
        Level(1000, 30, 1),
        Level(2000, 20, 1),
        Level(3000, 20, 1),  # issue 21's full-stack target for single-event deliveries
        Level(60, 60, 100),
        Level(200, 20, 100),  # 20,000 events/s in 100-event deliveries: the batched target
    ],
    store_rows=100_000,
    drain_timeout=240,
)
QUICK = Plan(
    floor_samples=0, quiet_samples=0, naive_events=0, levels=[Level(50, 4, 10)], store_rows=0, drain_timeout=180
)
"""The smoke run CI does (in tests/e2e, on the tests' stack): every acknowledged event stored once."""
QUIET_ONLY = Plan(floor_samples=10, quiet_samples=20, naive_events=0, levels=[], store_rows=0, drain_timeout=240)
"""Section 1 alone: floor, cold, warm and a burst of 50 empty runs per worker type."""
LEVELS_ONLY = Plan(
    floor_samples=0, quiet_samples=0, naive_events=20, levels=FULL.levels, store_rows=100_000, drain_timeout=240
)
"""Sections 2 to 5 alone, on the flowhook worker type."""


def _now() -> datetime:
    return datetime.now(UTC)


def phase_naive(bench: Bench, count: int, timeout: float) -> dict[str, Any]:
    """A burst of `count` events through the naive path; completed events per second."""
    dep = bench.deployment_id("naive-event/one-per-run")
    since = _now()
    received = _now()
    events = []
    rng = random.Random()
    for i in range(count):
        item = demo_event(rng, received)
        event_id = derive_event_id("naive", f"naive_{uuid.uuid4().hex}", i)
        envelope = Event(
            id=event_id,
            type=item["type"],
            source="naive",
            occurred=item["timestamp"],
            received=received,
            data=item["data"],
        )
        events.append(
            {
                "id": str(uuid.uuid4()),
                "occurred": received.isoformat(),
                "event": "flowhook.naive.event",
                "resource": {"prefect.resource.id": f"flowhook.naive.{event_id}"},
                "payload": {"event": envelope.model_dump(mode="json"), "emitted": received.isoformat()},
            }
        )
    bench.emit(events)
    ids = [e["payload"]["event"]["id"] for e in events]
    bench.progress(f"  naive: {count} events emitted, one flow run each; waiting")
    bench.wait_stored(ids, timeout=timeout)
    rows = bench.rows(ids)
    runs = bench.flow_runs(deployment_ids=[dep], since=since)
    last = max(r[4] for r in rows).replace(tzinfo=UTC)
    span = _seconds(received, last)
    return {
        "events": count,
        "stored": len(rows),
        "flow_runs": len(runs),
        "span_seconds": span,
        "events_per_second": len(rows) / span,
        "received_to_stored": _stats([_seconds(r[1], r[4]) for r in rows]),
    }


def phase_level(bench: Bench, level: Level, index: int, sampler: Sampler, timeout: float) -> dict[str, Any]:
    """One open-loop load level from a separate process; everything measured about it."""
    process_batch = [bench.deployment_id(worker_deployment(t)) for t in (USER_REQUEST, DATA_UPDATE, SCHEDULED_TICK)]
    bench.wait_idle()
    since = _now()
    sampler.reset()
    bench.progress(
        f"  level {index}: {level.events_per_second:,.0f} events/s offered "
        f"({level.rate:g} deliveries/s × {level.events_per_delivery}) for {level.seconds:g} s"
    )
    load = run_load(level, bench.secret, bench.stack.config.gateway_port, id_prefix=f"l{index}")
    acked = load["ids"]
    load_end = time.time()
    bench.progress(f"  level {index}: {len(acked):,} events acknowledged; waiting until stored")
    try:
        drain = bench.wait_stored(acked, timeout=timeout)
    except TimeoutError as exc:
        bench.progress(f"  level {index}: {exc}")
        drain = float("nan")
    usage = sampler.usage()
    rows = bench.rows(acked)
    runs = bench.flow_runs(deployment_ids=process_batch, since=since)
    received = [r[1] for r in rows]
    stored = [r[4] for r in rows]
    first_received = min(received) if rows else None
    last_stored = max(stored) if rows else None
    span = _seconds(first_received, last_stored) if rows else float("nan")
    load_start = load["started"]
    in_window = sum(1 for s in stored if s.replace(tzinfo=UTC).timestamp() <= load_end)
    acked_set = set(acked)
    stored_ids = {r[0] for r in rows}
    latencies = sorted(load["latencies"])
    return {
        "offered_events_per_s": level.events_per_second,
        "deliveries_per_s": level.rate,
        "events_per_delivery": level.events_per_delivery,
        "seconds": level.seconds,
        "statuses": load["statuses"],
        "acked": len(acked),
        "acked_events_per_s": len(acked) / load["elapsed"],
        "ack": _stats(latencies),
        "stored": len(rows),
        "stored_events_per_s": len(rows) / span if rows else 0.0,
        "stored_during_load_per_s": in_window / (load_end - load_start),
        "drain_seconds": drain,
        "stages": _stage_stats(rows),
        "flow_runs": len(runs),
        "flow_runs_with_events": len({r[5] for r in rows}),
        "flow_runs_per_min": len(runs) / (span / 60) if rows and span > 0 else 0.0,
        "usage": {name: vars(u) for name, u in usage.items()},
        "lost": len(acked_set - stored_ids),
        "duplicated": sum(1 for r in rows if r[6] > 1) + bench.duplicated_in_spool(acked_set),
    }


def phase_store(rows: int) -> dict[str, Any]:
    """DuckDB's raw Arrow insert against flowhook's `write_events`, same rows, store holding as many."""
    from bench.store_write import measure

    return dict(measure(rows, 3))


def _fmt_ms(stats: dict[str, float] | None, key: str) -> str:
    return "—" if stats is None else f"{stats[key] * 1000:,.0f}"


def _fmt_s(stats: dict[str, float] | None, key: str) -> str:
    return "—" if stats is None else f"{stats[key]:.2f}"


def print_levels(levels: list[dict[str, Any]]) -> None:
    print()
    print(
        f"{'offered ev/s':>12} {'ev/deliv':>8} {'acked ev/s':>10} {'stored ev/s':>11} {'runs':>5} {'runs/min':>8} "
        f"{'ack p50/p99 ms':>15} {'e2e p50/p95/p99 s':>18} {'gw cpu':>6} {'wk cpu':>6} {'srv cpu':>7} "
        f"{'gw MB':>5} {'run MB':>6} {'lost':>4} {'dup':>3}"
    )
    for r in levels:
        e2e = r["stages"]["received→stored"]
        u = r["usage"]
        print(
            f"{r['offered_events_per_s']:>12,.0f} {r['events_per_delivery']:>8} {r['acked_events_per_s']:>10,.0f} "
            f"{r['stored_events_per_s']:>11,.0f} {r['flow_runs']:>5} {r['flow_runs_per_min']:>8.1f} "
            f"{_fmt_ms(r['ack'], 'p50') + '/' + _fmt_ms(r['ack'], 'p99'):>15} "
            f"{_fmt_s(e2e, 'p50') + '/' + _fmt_s(e2e, 'p95') + '/' + _fmt_s(e2e, 'p99'):>18} "
            f"{u['gateway']['cpu_seconds']:>6.1f} {u['worker']['cpu_seconds']:>6.1f} "
            f"{u['server']['cpu_seconds']:>7.1f} "
            f"{u['gateway']['peak_rss'] / 2**20:>5.0f} {u['worker']['child_peak_rss'] / 2**20:>6.0f} "
            f"{r['lost']:>4} {r['duplicated']:>3}"
        )
    print()
    print("per stage p50 / p99 (s):")
    for r in levels:
        cells = [
            f"{name} {_fmt_s(r['stages'][name], 'p50')}/{_fmt_s(r['stages'][name], 'p99')}" for name in STAGE_NAMES
        ]
        print(f"  {r['offered_events_per_s']:>7,.0f} ev/s: " + "  ".join(cells))


def print_markdown(levels: list[dict[str, Any]]) -> None:
    """The README's table, from this run."""
    print(
        "| offered events/s | deliveries/s × events | stored events/s | flow runs (/min) | ack p50 / p99 "
        "| received→stored p50 / p95 / p99 | CPU s gateway / worker+runs / server "
        "| peak RSS gateway / run | lost / dup |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in levels:
        e2e, ack, u = r["stages"]["received→stored"], r["ack"], r["usage"]
        print(
            f"| {r['offered_events_per_s']:,.0f} | {r['deliveries_per_s']:,.0f} × {r['events_per_delivery']} "
            f"| {r['stored_events_per_s']:,.0f} | {r['flow_runs']} ({r['flow_runs_per_min']:.1f}) "
            f"| {_fmt_ms(ack, 'p50')} / {_fmt_ms(ack, 'p99')} ms "
            f"| {_fmt_s(e2e, 'p50')} / {_fmt_s(e2e, 'p95')} / {_fmt_s(e2e, 'p99')} s "
            f"| {u['gateway']['cpu_seconds']:.0f} / {u['worker']['cpu_seconds']:.0f} "
            f"/ {u['server']['cpu_seconds']:.0f} "
            f"| {u['gateway']['peak_rss'] / 2**20:.0f} / {u['worker']['child_peak_rss'] / 2**20:.0f} MB "
            f"| {r['lost']} / {r['duplicated']} |"
        )


def measure(stack: LocalStack, plan: Plan, *, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Every phase of `plan` against a running stack (the naive path is deployed to it if needed)."""
    results: dict[str, Any] = {"started": _now().isoformat(), "plan": repr(plan)}
    naive_path = ROOT / "bench" / "prefect.yaml"
    if plan.floor_samples or plan.naive_events:
        stack.deploy(naive_path)
    bench = Bench(stack, progress=say)
    if plan.quiet_samples or plan.floor_samples:
        level_env = {k: v for k, v in stack.config.extra_env.items() if k != "FLOWHOOK_DRAIN__IDLE_SECONDS"}
        quiet_env = {**level_env, "FLOWHOOK_DRAIN__IDLE_SECONDS": QUIET_IDLE_SECONDS}
        switch = {"prefect_files": [naive_path], "extra_env": quiet_env}
        if stack.config.extra_env != quiet_env:
            switch_worker_type(stack, plan.worker_types[0], **switch)
        results["quiet"] = quiet_section(
            bench,
            plan.worker_types,
            floor=plan.floor_samples,
            cold=plan.quiet_samples,
            warm=plan.warm_samples,
            burst=plan.burst_runs,
            **switch,
        )
        results["quiet_drain_idle_seconds"] = float(QUIET_IDLE_SECONDS)
        if plan.naive_events or plan.levels:
            say("[bench] back to the flowhook worker type, runs awake 10 s, for the load levels")
            switch_worker_type(stack, "flowhook", prefect_files=[naive_path], extra_env=level_env)
    if plan.naive_events or plan.levels:
        parts = {k: v for k, v in stack.pids().items() if k in ("server", "worker", "gateway")}
        with Sampler(parts) as sampler:
            if plan.naive_events:
                say("[bench] naive: one event → one automation → one flow run")
                results["naive"] = phase_naive(bench, plan.naive_events, plan.drain_timeout)
            say("[bench] load levels (open loop, Poisson, from a separate process)")
            results["levels"] = [
                phase_level(bench, level, i, sampler, plan.drain_timeout) for i, level in enumerate(plan.levels)
            ]
    if plan.store_rows:
        say("[bench] store: raw Arrow insert against write_events, same rows")
        results["store"] = phase_store(plan.store_rows)
    return results


def run(plan: Plan, *, worker_limit: int, keep: Path | None) -> dict[str, Any]:
    """Start the local stack in a temporary folder (or `keep`), measure, stop it."""
    tmp = tempfile.TemporaryDirectory(prefix="flowhook-bench-")
    env = {"PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING"}
    if plan.quiet_samples or plan.floor_samples:
        env["FLOWHOOK_DRAIN__IDLE_SECONDS"] = QUIET_IDLE_SECONDS  # the quiet section comes first
    config = StackConfig(
        root=ROOT,
        data_dir=keep or Path(tmp.name),
        prefect_port=free_port(),
        gateway_port=free_port(),
        worker_limit=worker_limit,
        worker_type=plan.worker_types[0],
        extra_env=env,
    )
    t0 = time.monotonic()
    say = functools.partial(print, flush=True)
    with LocalStack(config, progress=lambda m: say(f"[stack] {m}")) as stack:
        started = time.monotonic() - t0
        say(f"[bench] stack up in {started:.0f} s")
        results = measure(stack, plan, say=say)
    results["stack_start_seconds"] = started
    results["seconds"] = time.monotonic() - t0
    tmp.cleanup()
    return results


def summarise(results: dict[str, Any]) -> list[str]:
    """The targets of the benchmark, each with its figure and whether it was met."""
    lines = summarise_quiet(results.get("quiet", {}))
    levels = results.get("levels", [])
    if levels:
        best = max(levels, key=lambda r: r["stored_events_per_s"])
        lines.append(
            f"best level: {best['stored_events_per_s']:,.0f} events/s stored "
            f"(during load {best['stored_during_load_per_s']:,.0f}/s)"
        )
        if "naive" in results:
            naive = results["naive"]["events_per_second"]
            lines.append(
                f"naive path: {naive:.3f} events/s ({results['naive']['flow_runs']} flow runs for "
                f"{results['naive']['events']} events); best level = {best['stored_events_per_s'] / naive:,.0f}× naive"
            )
    for r in levels:
        if r["events_per_delivery"] == 1 and r["deliveries_per_s"] >= 1000:
            lines.append(
                f"{r['deliveries_per_s']:,.0f} single-event deliveries/s offered: acked "
                f"{r['acked_events_per_s']:,.0f}/s, ack p99 {r['ack']['p99'] * 1000:,.0f} ms"
            )
    store = results.get("store")
    if store:
        lines.append(
            f"store: write_events {store['write_rows_per_s']:,.0f} rows/s vs raw Arrow insert "
            f"{store['raw_rows_per_s']:,.0f} rows/s of the same rows = {store['ratio']:.0%} (medians of 3)"
        )
    if levels:
        lost = sum(r["lost"] for r in levels)
        dup = sum(r["duplicated"] for r in levels)
        lines.append(f"lost {lost}, duplicated {dup}")
    return lines


def _chosen_level(text: str, parser: argparse.ArgumentParser) -> Level:
    """The full run's level that `--level RATE[xEVENTS]` names."""
    rate, _, events = text.partition("x")
    for level in FULL.levels:
        if f"{level.rate:g}" == rate and level.events_per_delivery == int(events or 1):
            return level
    parser.error(f"no level {text!r} in the full run (its levels: {', '.join(_named(lv) for lv in FULL.levels)})")


def _named(level: Level) -> str:
    return f"{level.rate:g}" + (f"x{level.events_per_delivery}" if level.events_per_delivery > 1 else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("--quick", action="store_true", help="≤ 60 s smoke run for CI: checks lost = 0, dup = 0")
    modes.add_argument("--quiet-only", action="store_true", help="only the quiet section, per worker type")
    modes.add_argument("--levels-only", action="store_true", help="all but the quiet section")
    parser.add_argument("--worker-limit", type=int, default=6, help="flow runs the worker runs at once")
    parser.add_argument(
        "--worker-type", choices=("flowhook", "process"), help="with --levels-only: the pool's type (flowhook)"
    )
    parser.add_argument(
        "--level",
        action="append",
        metavar="RATE[xEVENTS]",
        help="with --levels-only: only this level of the full run (e.g. 1000 or 200x100); repeatable",
    )
    parser.add_argument("--keep", type=Path, help="keep the stack's data in this folder")
    parser.add_argument(
        "--json", type=Path, help="write every figure to this JSON file (a full run: bench/results/pipeline.json)"
    )
    args = parser.parse_args()
    plan = QUICK if args.quick else QUIET_ONLY if args.quiet_only else LEVELS_ONLY if args.levels_only else FULL
    if args.worker_type and plan is LEVELS_ONLY:
        plan = dataclasses.replace(plan, worker_types=(args.worker_type,))
    if args.level:
        if not args.levels_only:
            parser.error("--level goes with --levels-only")
        chosen = [_chosen_level(text, parser) for text in args.level]
        plan = dataclasses.replace(plan, levels=chosen, store_rows=0)
    results = run(plan, worker_limit=args.worker_limit, keep=args.keep)
    if results.get("quiet"):
        print_quiet(results["quiet"])
        print()
    if results.get("levels"):
        print_levels(results["levels"])
        print()
        print_markdown(results["levels"])
        print()
    for line in summarise(results):
        print(line)
    print(
        f"benchmark took {results['seconds']:.0f} s, of which {results['stack_start_seconds']:.0f} s starting the stack"
    )
    path = args.json or (ROOT / "bench" / "results" / "pipeline.json" if plan is FULL else None)
    if path is not None:
        sections = "quiet only" if args.quiet_only else "all but quiet" if args.levels_only else "all"
        write_results("pipeline", {"sections": sections, **results}, path=path)
    bad = [r for r in results.get("levels", []) if r["lost"] or r["duplicated"] or r["acked"] == 0]
    if bad:
        print(f"FAILED: {len(bad)} level(s) lost, duplicated or acknowledged nothing")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
