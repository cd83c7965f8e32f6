"""Gateway ingest benchmark: signed deliveries at a fixed open-loop (Poisson) rate against the real
gateway process, measured from a separate load process.

It answers: how many signed deliveries (and events) per second does the gateway acknowledge —
verified, validated and fsync'd — with what ack latency, and at what CPU cost per accepted delivery?
Prefect is not involved: the gateway forwards to a closed port, so batches wait in the spool (what the
gateway does when Prefect is down). Latency is measured from each request's *scheduled* send time, so a
stalled gateway cannot hide its queueing (no coordinated omission). After the run, every acknowledged id
must be in the spool once. Beside each level, in the same run: the bare-HTTP ceiling, the same load
generator posting the same signed bytes to a bare uvicorn app that answers 202 at once
(`bench.servers.bare_server`); each level's acked rate is printed as a ratio to it.

    uv run python bench/gateway_ingest.py --repeat 3      # the levels of the README table, medians of 3;
                                                          # writes bench/results/gateway_ingest.json
    uv run python bench/gateway_ingest.py --rate 2000 --seconds 10 --events-per-delivery 1
    uv run python bench/gateway_ingest.py --quick         # a few seconds, for CI: lost = 0, dup = 0
    uv run python bench/gateway_ingest.py --repeat 3 --against 49be51e   # each level also against that commit's
                                                                         # gateway, right after this tree's
    uv run python bench/gateway_ingest.py --overload --repeat 3   # capacity, then 2x it offered (bench/overload.py);
                                                                  # writes bench/results/gateway_overload.json
    uv run python bench/gateway_ingest.py --overload --capacity 2750 --seconds 3  # 2x a given capacity, briefly

The server (the gateway, or the bare app) runs on one core and the load on the other, so the load's own CPU
(up to 0.8 of a core at 8,000/s) is not taken from what is measured; `--unpinned` lets them share both. The
load runs in one process, or with `--load-processes N` in N; a level and its bare ceiling use the same number.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from bench.loadgen import Level, run_load  # noqa: E402
from bench.procstats import cpu_seconds, peak_rss, pin  # noqa: E402
from bench.results import extracted, write_results  # noqa: E402
from bench.servers import bare_server, gateway_process, spooled_ids  # noqa: E402
from flowhook.gateway.schemes import generate_secret  # noqa: E402
from flowhook.metrics import percentile  # noqa: E402
from flowhook.sources.webhook import SignatureConfig  # noqa: E402

GATEWAY_CPUS, LOAD_CPUS = {0}, {1}
"""With `pinned`: the gateway on one core, the load on the other (each has a core of its own)."""


def run_level(
    level: Level, *, connections: int, env: dict[str, str] | None = None, processes: int = 1, pinned: bool = False
) -> dict[str, Any]:
    """One level against a fresh gateway process (`env`: settings of its own), from `processes` load processes
    (`pinned`: the gateway on GATEWAY_CPUS, the load on LOAD_CPUS); the figures and the lost/duplicate check."""
    with tempfile.TemporaryDirectory(prefix="flowhook-bench-") as tmp:
        data = Path(tmp)
        with gateway_process(data, env) as (pid, port):
            secret = json.loads((data / "secrets" / "demo.json").read_text())["current"]
            if pinned:
                pin(pid, GATEWAY_CPUS)
            cpu_before = cpu_seconds(pid)
            cpus = LOAD_CPUS if pinned else None
            result = run_load(level, secret, port, connections=connections, processes=processes, cpus=cpus)
            cpu_after, peak = cpu_seconds(pid), peak_rss(pid)
        spooled = spooled_ids(data)
    acked = result["ids"]
    accepted = result["statuses"].get(202, 0)
    return {
        **_figures(level, result),
        "gateway_cpu_s": cpu_after - cpu_before,
        "cpu_ms_per_accepted": 1000 * (cpu_after - cpu_before) / max(1, accepted),
        "gateway_peak_rss_mb": peak / 2**20,
        "lost": len(set(acked) - set(spooled)),
        "duplicated": len(spooled) - len(set(spooled)),
    }


def bare_level(level: Level, *, connections: int, processes: int = 1, pinned: bool = False) -> dict[str, Any]:
    """The same level against the bare app (pinned as the gateway is): the rate and latency the HTTP stack alone
    reaches on this machine."""
    with bare_server() as (pid, port):
        if pinned:
            pin(pid, GATEWAY_CPUS)
        cpu_before = cpu_seconds(pid)
        secret = generate_secret(SignatureConfig())
        cpus = LOAD_CPUS if pinned else None
        result = run_load(level, secret, port, connections=connections, processes=processes, cpus=cpus)
        cpu = cpu_seconds(pid) - cpu_before
    figures = _figures(level, result)
    return {**figures, "cpu_ms_per_request": 1000 * cpu / max(1, figures["deliveries"])}


def _figures(level: Level, result: dict[str, Any]) -> dict[str, Any]:
    latencies = sorted(result["latencies"])
    accepted_latencies = sorted(result["accepted_latencies"]) or [0.0]
    send_lags = sorted(result["send_lags"]) or [0.0]
    wake_lags = sorted(result["wake_lags"]) or [0.0]
    accepted = result["statuses"].get(202, 0)
    return {
        "offered_deliveries_per_s": level.rate,
        "offered_achieved_per_s": result["offered_per_s"],  # what the load process(es) really wrote per second
        "send_lag_p99_ms": percentile(send_lags, 0.99) * 1000,  # due → written
        "generator_lag_p99_ms": percentile(wake_lags, 0.99) * 1000,  # due → picked up by the load process
        "events_per_delivery": level.events_per_delivery,
        "deliveries": len(latencies),
        "acked_deliveries_per_s": accepted / result["elapsed"],
        "acked_events_per_s": len(result["ids"]) / result["elapsed"],
        "ack_p50_ms": percentile(latencies, 0.5) * 1000,
        "ack_p95_ms": percentile(latencies, 0.95) * 1000,
        "ack_p99_ms": percentile(latencies, 0.99) * 1000,
        "accepted_p99_ms": percentile(accepted_latencies, 0.99) * 1000,
        "statuses": result["statuses"],
        "load_cpu_s": result["load_cpu_s"],
        "load_processes": result["processes"],
    }


MEDIAN_KEYS = (
    "acked_deliveries_per_s",
    "acked_events_per_s",
    "ack_p50_ms",
    "ack_p95_ms",
    "ack_p99_ms",
    "gateway_cpu_s",
    "cpu_ms_per_accepted",
    "gateway_peak_rss_mb",
    "bare_acked_per_s",
    "bare_p99_ms",
    "of_bare",
)
AGAINST_KEYS = ("against_acked_per_s", "against_p99_ms", "against_cpu_ms_per_accepted")
HEADER = (
    f"{'offered/s':>9} {'ev/deliv':>8} {'acked/s':>9} {'events/s':>9} {'p50 ms':>8} {'p95 ms':>8} "
    f"{'p99 ms':>8} {'cpu s':>6} {'ms/acc':>6} {'rss MB':>7} {'lost':>5} {'dup':>4} {'bare/s':>7} {'bare p99':>8} "
    f"{'of bare':>7}  statuses"
)


def _print(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        print(
            f"{r['offered_deliveries_per_s']:>9.0f} {r['events_per_delivery']:>8} {r['acked_deliveries_per_s']:>9.0f} "
            f"{r['acked_events_per_s']:>9.0f} {r['ack_p50_ms']:>8.1f} {r['ack_p95_ms']:>8.1f} {r['ack_p99_ms']:>8.1f} "
            f"{r['gateway_cpu_s']:>6.1f} {r['cpu_ms_per_accepted']:>6.2f} {r['gateway_peak_rss_mb']:>7.0f} "
            f"{r['lost']:>5} {r['duplicated']:>4} {r['bare_acked_per_s']:>7.0f} {r['bare_p99_ms']:>8.1f} "
            f"{r['of_bare']:>7.0%}  {r['statuses']}"
        )


def with_ceiling(
    level: Level, *, connections: int, processes: int = 1, pinned: bool = False, against: Path | None = None
) -> dict[str, Any]:
    """One level against the gateway, then against the bare app: the gateway's row with the ceiling beside it;
    with `against` (another tree's `src`), the same level against that tree's gateway too, right after."""
    row = run_level(level, connections=connections, processes=processes, pinned=pinned)
    bare = bare_level(level, connections=connections, processes=processes, pinned=pinned)
    ceiling = {"bare_acked_per_s": bare["acked_deliveries_per_s"], "bare_p99_ms": bare["ack_p99_ms"]}
    ratio = row["acked_deliveries_per_s"] / bare["acked_deliveries_per_s"] if bare["acked_deliveries_per_s"] else 0.0
    row = {**row, **ceiling, "of_bare": ratio, "bare_cpu_ms_per_request": bare["cpu_ms_per_request"]}
    if against is None:
        return row
    other = run_level(
        level, connections=connections, processes=processes, pinned=pinned, env={"PYTHONPATH": str(against)}
    )
    return {
        **row,
        "against_acked_per_s": other["acked_deliveries_per_s"],
        "against_p99_ms": other["ack_p99_ms"],
        "against_cpu_ms_per_accepted": other["cpu_ms_per_accepted"],
        "against_lost": other["lost"],
        "against_duplicated": other["duplicated"],
    }


def _print_against(rows: list[dict[str, Any]], revision: str) -> None:
    for r in rows:
        print(
            f"{'':>9} {'':>8} {r['against_acked_per_s']:>9.0f} {'':>9} {'':>8} {'':>8} {r['against_p99_ms']:>8.1f} "
            f"{'':>6} {r['against_cpu_ms_per_accepted']:>6.2f}   ^ {revision}'s gateway, right after: this tree acks "
            f"{r['acked_deliveries_per_s'] / max(r['against_acked_per_s'], 1e-9):.2f}x, "
            f"CPU per delivery {r['cpu_ms_per_accepted'] / max(r['against_cpu_ms_per_accepted'], 1e-9):.2f}x"
        )


def _levels(
    levels: list[Level], args: argparse.Namespace, *, connections: int, processes: int, against: Path | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every run of every level (printed as it ends), and each level's median row when repeated."""
    keys = (*MEDIAN_KEYS, *AGAINST_KEYS) if against else MEDIAN_KEYS
    rows, medians = [], []
    print(HEADER)
    for level in levels:
        runs = []
        for _ in range(args.repeat):
            runs.append(
                with_ceiling(
                    level, connections=connections, processes=processes, pinned=not args.unpinned, against=against
                )
            )
            _print(runs[-1:])
            if against:
                _print_against(runs[-1:], args.against)
        rows += runs
        if args.repeat > 1:
            median = {key: statistics.median(r[key] for r in runs) for key in keys}
            totals = {"lost": sum(r["lost"] for r in runs), "duplicated": sum(r["duplicated"] for r in runs)}
            medians.append({**runs[0], **median, **totals, "statuses": f"median of {len(runs)} runs (lost/dup: sums)"})
            _print(medians[-1:])
            if against:
                _print_against(medians[-1:], args.against)
    return rows, medians


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, help="deliveries per second offered (one level)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of a level")
    parser.add_argument("--events-per-delivery", type=int, default=1)
    parser.add_argument(
        "--connections",
        type=int,
        help="keep-alive connections of the load, split across its processes (64; with --overload 512)",
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run: checks lost = 0 and dup = 0")
    parser.add_argument("--repeat", type=int, default=1, help="runs per level; the median row is printed too")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON too")
    parser.add_argument("--overload", action="store_true", help="find capacity, then offer twice it")
    parser.add_argument(
        "--capacity", type=float, help="with --overload: take this capacity (deliveries/s) instead of searching"
    )
    parser.add_argument("--load-processes", type=int, help="processes the load is split across (1)")
    parser.add_argument(
        "--against",
        metavar="REV",
        help="each level also against the gateway of this commit (git archive), right after this tree's: "
        "changes measured side by side, on the same machine at the same time",
    )
    parser.add_argument(
        "--unpinned",
        action="store_true",
        help="let the server (gateway or bare app) and the load share both cores (default: one core each)",
    )
    args = parser.parse_args()
    if args.overload:
        from bench.overload import overload_runs

        # Many senders: more connections than the gateway admits requests at once (`max_in_flight`, 128).
        return overload_runs(
            run_level,
            repeat=args.repeat,
            seconds=args.seconds,
            connections=args.connections or 512,
            processes=args.load_processes or 1,
            given_capacity=args.capacity,
            pinned=not args.unpinned,
        )
    if args.capacity:
        parser.error("--capacity goes with --overload")
    processes = args.load_processes or 1
    connections = args.connections or 64
    if args.quick:
        levels = [Level(200, 3, 1), Level(20, 3, 50)]
    elif args.rate:
        levels = [Level(args.rate, args.seconds, args.events_per_delivery)]
    else:
        # Up to 8,000/s: past where the bare app (and the load process) saturate, so the ceiling is in the run.
        singles = [Level(r, args.seconds, 1) for r in (100, 500, 1000, 2000, 4000, 8000)]
        levels = [*singles, Level(100, args.seconds, 100), Level(300, args.seconds, 100)]
    full = not args.quick and not args.rate
    with contextlib.ExitStack() as stack:
        against = stack.enter_context(extracted(args.against, "src")) / "src" if args.against else None
        rows, medians = _levels(levels, args, connections=connections, processes=processes, against=against)
    if args.json:
        print(json.dumps(rows, indent=2))
    if full:
        figures = {
            "seconds_per_level": args.seconds,
            "load_processes": processes,
            "pinned": not args.unpinned,
            "against": args.against,
        }
        path = write_results("gateway_ingest", {**figures, "runs": rows, "medians": medians})
        print(f"figures written to {path.relative_to(ROOT)}")
    # Past capacity the gateway answers 503 overloaded (by design, and shown in the statuses); what must never be
    # is an acknowledged event lost or stored twice.
    bad = [r for r in rows if r["lost"] or r["duplicated"] or r.get("against_lost") or r.get("against_duplicated")]
    if bad:
        print(f"FAILED: {len(bad)} level(s) lost or duplicated acknowledged events")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
