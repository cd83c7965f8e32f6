"""Does the report tell the truth? Known loads through the full local stack, the generator's own log as ground
truth, and the report's figures beside it as ratios.

Loads (single-event signed deliveries unless said):
  poisson-20     Poisson at 20 deliveries/s for 60 s (the demo's mix of types)
  poisson-100    Poisson at 100/s for 60 s
  bursty         200/s for 5 s, silent for 10 s, four times
  gateway-bound  Poisson at 700/s for 30 s: the gateway is forced to be the bottleneck
  handler-bound  40 deliveries/s × 10 `bench_slow` events (2 ms of handler CPU each) for 30 s: the handler is

For each, over the load's steady part (5 s in, 2 s before its end; the whole span for the bursty one):
  λ: the report's against the generator's (events it had acknowledged, by send time) over the same window;
  μ: against the events the store holds as stored in the window, counted by id from the raw rows;
  p50/p95/p99 received→stored: against a recomputation from those rows;
  Little: the independent check's verdict and gap (sampled spool backlog against λ × W from timestamps);
  bottleneck: the stage the report names, against the one the load forces (where it forces one).
Targets (issue 19): λ and μ within 2 %, percentiles within 5 %, Little within 5 % on steady windows, the
forced bottleneck named.

    uv run python bench/report_truth.py            # all loads (~8 min); writes bench/results/report_truth.json
    uv run python bench/report_truth.py --only poisson-20
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from bench.harness import Bench  # noqa: E402
from bench.loadgen import Level, run_load  # noqa: E402
from bench.results import write_results  # noqa: E402
from bench.slow_type import SLOW, slow_item  # noqa: E402
from flowhook.demo import demo_event  # noqa: E402
from flowhook.deployments.files import splice  # noqa: E402
from flowhook.events import load_catalog  # noqa: E402
from flowhook.metrics import Report, Window  # noqa: E402
from flowhook.reporting import window_report  # noqa: E402
from flowhook.spool import Spool  # noqa: E402
from flowhook.stack import LocalStack, StackConfig, free_port  # noqa: E402

MODULES = '["bench.slow_type"]'


@dataclass(frozen=True)
class Load:
    name: str
    level: Level
    item: Callable[..., dict[str, Any]] = demo_event
    on_off: tuple[float, float] | None = None
    steady: bool = True
    forces: str | None = None
    """The stage this load makes the bottleneck, if any."""


LOADS = (
    Load("poisson-20", Level(rate=20, seconds=60, events_per_delivery=1)),
    Load("poisson-100", Level(rate=100, seconds=60, events_per_delivery=1)),
    Load("bursty", Level(rate=200, seconds=20, events_per_delivery=1), on_off=(5.0, 10.0), steady=False),
    Load("gateway-bound", Level(rate=700, seconds=30, events_per_delivery=1), forces="gateway"),
    Load("handler-bound", Level(rate=40, seconds=30, events_per_delivery=10), item=slow_item, forces=f"worker/{SLOW}"),
)


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _quantiles(values: list[float]) -> tuple[float, float, float]:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[94], cuts[98]


def _ratio(got: float | None, want: float | None) -> float | None:
    return None if got is None or not want else got / want


def measure(bench: Bench, load: Load, samples: Path) -> dict[str, Any]:
    """Run one load, wait until it is stored, and set the report beside the truth."""
    bench.wait_idle()
    bench.progress(f"[{load.name}] {load.level.rate:g} deliveries/s × {load.level.events_per_delivery}")
    result = run_load(
        load.level, bench.secret, bench.stack.config.gateway_port, id_prefix=load.name, item=load.item,
        on_off=load.on_off,
    )  # fmt: skip
    ids = result["ids"]
    bench.wait_stored(ids, timeout=300)
    time.sleep(2.5)  # the gateway's sampler writes each second once it is over
    started, log = result["started"], result["log"]
    last_due = max(due for due, *_ in log)
    lo, hi = (5.0, last_due - 2.0) if load.steady else (-1.0, last_due + 1.0)
    window = Window(_utc(started + lo), _utc(started + hi), bucket_seconds=5.0)
    if not load.steady:  # the whole burst: until the last event is stored
        last = max(r[4] for r in bench.rows(ids)).replace(tzinfo=UTC) + timedelta(seconds=1)
        window = Window(window.start, last, bucket_seconds=5.0)
    report = window_report(
        bench.db, Spool(bench.stack.config.data_dir / "spool"), window, target_p99_seconds=30.0, samples_dir=samples
    )
    return _compare(load, report, window, result, bench)


def _compare(load: Load, report: Report, window: Window, result: dict[str, Any], bench: Bench) -> dict[str, Any]:
    started = result["started"]
    begin, end = window.start.timestamp() - started, window.end.timestamp() - started
    sent = sum(events for due, _, status, events in result["log"] if status == 202 and begin <= due < end)
    with bench.db.connect() as con:
        rows = con.execute(
            "SELECT epoch_us(stored) - epoch_us(received) FROM events WHERE stored >= ? AND stored < ?",
            [window.start.replace(tzinfo=None), window.end.replace(tzinfo=None)],
        ).fetchall()
    latencies = [us / 1e6 for (us,) in rows]
    overall = report.rows[-1]
    truth_p = _quantiles(latencies) if len(latencies) > 1 else (None, None, None)
    got_p = (overall.latency.p50, overall.latency.p95, overall.latency.p99) if overall.latency else (None,) * 3
    little = overall.little
    named = report.bottleneck.name if report.bottleneck else None
    statuses = result["statuses"]
    return {
        "load": load.name,
        "offered_per_s": load.level.events_per_second,
        "window_seconds": window.seconds,
        "statuses": statuses,
        "lambda": {"report": overall.arrival_rate, "truth": sent / window.seconds},
        "mu": {"report": overall.processing_rate, "truth": len(latencies) / window.seconds},
        "latency": {
            q: {"report": g, "truth": t} for q, g, t in zip(("p50", "p95", "p99"), got_p, truth_p, strict=True)
        },
        "little": None
        if little is None
        else {
            "verdict": little.verdict,
            "gap": little.gap,
            "sampled_backlog": little.sampled_backlog,
            "counted_backlog": little.counted_backlog,
            "watched_share": little.watched_share,
        },
        "stages": [
            {"name": s.name, "capacity": s.capacity, "load": s.load, "utilisation": s.utilisation}
            for s in report.stages
        ],
        "bottleneck": {"named": named, "forced": load.forces, "saturation_rate": report.saturation_rate},
        "ack_p99_seconds": _quantiles([lat for _, lat, status, _ in result["log"] if status == 202])[2],
    }


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def print_table(rows: list[dict[str, Any]]) -> None:
    print()
    print("| load | λ report / truth | μ report / truth | p50 | p95 | p99 | Little (gap) | bottleneck (forced) |")
    print("|---|---:|---:|---:|---:|---:|---|---|")
    for r in rows:
        lam, mu = r["lambda"], r["mu"]
        lat = r["latency"]
        little = r["little"]
        check = "—" if little is None else f"{little['verdict']} ({100 * little['gap']:.1f} %)"
        bottleneck = r["bottleneck"]
        forced = f" ({bottleneck['forced']})" if bottleneck["forced"] else ""
        print(
            f"| {r['load']} | {lam['report']:.2f} / {lam['truth']:.2f} = {_fmt(_ratio(lam['report'], lam['truth']))} "
            f"| {mu['report']:.2f} / {mu['truth']:.2f} = {_fmt(_ratio(mu['report'], mu['truth']))} "
            + " ".join(f"| {_fmt(_ratio(lat[q]['report'], lat[q]['truth']))}" for q in ("p50", "p95", "p99"))
            + f" | {check} | {bottleneck['named']}{forced} |"
        )


def verdicts(rows: list[dict[str, Any]]) -> list[str]:
    """Each target of the issue, met or not, in a line."""
    lines = []
    for r in rows:
        load = r["load"]
        for name in ("lambda", "mu"):
            ratio = _ratio(r[name]["report"], r[name]["truth"])
            ok = ratio is not None and abs(ratio - 1) <= 0.02
            lines.append(f"{load}: {name} ratio {_fmt(ratio)}: {'met' if ok else 'MISSED'} (±2 %)")
        for q in ("p50", "p95", "p99"):
            ratio = _ratio(r["latency"][q]["report"], r["latency"][q]["truth"])
            ok = ratio is not None and abs(ratio - 1) <= 0.05
            lines.append(f"{load}: {q} ratio {_fmt(ratio)}: {'met' if ok else 'MISSED'} (±5 %)")
        little = r["little"]
        if load in ("poisson-20", "poisson-100"):
            ok = little is not None and little["verdict"] == "holds" and little["gap"] <= 0.05
            gap = "—" if little is None else f"{100 * little['gap']:.1f} %"
            lines.append(f"{load}: Little gap {gap}: {'met' if ok else 'MISSED'} (≤ 5 % on a steady window)")
        forced = r["bottleneck"]["forced"]
        if forced:
            named = r["bottleneck"]["named"]
            lines.append(f"{load}: bottleneck {named}: {'met' if named == forced else 'MISSED'} (forced {forced})")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=[load.name for load in LOADS], help="run just this load")
    parser.add_argument("--json", type=Path, help="write the figures here (default with all loads: bench/results)")
    args = parser.parse_args()
    loads = [load for load in LOADS if not args.only or load.name in args.only]
    say = functools.partial(print, flush=True)
    with tempfile.TemporaryDirectory(prefix="flowhook-truth-") as tmp:
        data = Path(tmp)
        env = {
            "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "FLOWHOOK_EVENT_MODULES": MODULES,
            "PYTHONPATH": str(ROOT),
        }
        config = StackConfig(
            root=ROOT, data_dir=data, prefect_port=free_port(), gateway_port=free_port(), worker_limit=6, extra_env=env
        )
        with LocalStack(config, progress=lambda m: say(f"[stack] {m}")) as stack:
            # The slow type's deployment and trigger, as `flowhook deployments generate` would write them.
            deployments = data / "prefect.yaml"
            catalog = load_catalog(["bench.slow_type"])
            deployments.write_text(splice((ROOT / "prefect.yaml").read_text(), catalog))
            stack.deploy(deployments)
            bench = Bench(stack, progress=say)
            rows = [measure(bench, load, data / "spool" / "samples") for load in loads]
    print_table(rows)
    print()
    lines = verdicts(rows)
    for line in lines:
        print(line)
    path = args.json or (None if args.only else ROOT / "bench" / "results" / "report_truth.json")
    if path is not None:
        write_results("report_truth", {"loads": rows, "verdicts": lines}, path=path)
        print(f"figures: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
