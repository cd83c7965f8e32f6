"""`flowhook.emit` and `emit_many` against a real gateway process on 127.0.0.1, from 8 threads of this process.

It answers: how many single-event `emit()` calls, and how many events through `emit_many` in chunks, does one
Python process get acknowledged per second? Beside each, in the same run: the old path (what `emit_many` did
before the shared connections: a new httpx client, the sources file read and the secret looked up, per call)
and the bare-HTTP ceiling (the same threads posting the same bytes on the same kind of connections to a bare
uvicorn app that answers at once). Every phase stops after a fixed count or its time limit; after the run, every
acknowledged id must be in the gateway's spool once.

    uv run python bench/emit_rate.py --repeat 3     # medians of 3; writes bench/results/emit_rate.json
    uv run python bench/emit_rate.py --quick        # a few seconds, nothing written: lost = 0, dup = 0
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from bench.procstats import cpu_seconds  # noqa: E402
from bench.results import write_results  # noqa: E402
from bench.servers import bare_server, gateway_process, spooled_ids  # noqa: E402
from flowhook.demo import demo_event  # noqa: E402
from flowhook.gateway.schemes import sign  # noqa: E402
from flowhook.gateway.secrets import signing_secret  # noqa: E402
from flowhook.settings import Settings  # noqa: E402
from flowhook.sources.connections import Connections  # noqa: E402
from flowhook.sources.emit import SOURCE, emit, emit_many  # noqa: E402
from flowhook.sources.pool import close_connections  # noqa: E402

THREADS = 8
CHUNK = 500
Items = Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class Phase:
    """`calls` calls at most per thread, for `seconds` at most, each sending `events` events."""

    name: str
    events: int
    calls: int
    seconds: float


def old_emit_many(settings: Settings, items: Items) -> list[str]:
    """`emit_many` as it was before the shared connections: the source's config read, its secret looked up and
    an httpx client made for each call (GatewaySink then), the body signed and posted, the client closed."""
    config, secret = settings.source_configs()[SOURCE], signing_secret(settings, SOURCE)
    url = f"http://{settings.gateway_host}:{settings.gateway_port}/hooks/{SOURCE}"
    body = orjson.dumps(list(items))
    headers = {"content-type": "application/json", **sign(config.signature, body, secret, msg_id=f"msg_{uuid4().hex}")}
    with httpx.Client(timeout=30.0) as client:
        response = client.post(url, content=body, headers=headers)
    assert response.status_code == 202, response.text
    ids: list[str] = response.json()["ids"]
    return ids


def run_threads(phase: Phase, call: Callable[[Items], list[str]], items: list[dict[str, Any]]) -> dict[str, Any]:
    """`call` from THREADS threads, each on its own slice of `items`, until the phase's count or time is up."""
    ids: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(THREADS + 1)
    deadline = 0.0

    def worker(n: int) -> None:
        mine: list[str] = []
        rng = random.Random(n)
        start.wait()
        try:
            for _ in range(phase.calls):
                if time.monotonic() > deadline:
                    break
                offset = rng.randrange(len(items) - phase.events + 1)
                mine += call(items[offset : offset + phase.events])
        except Exception as exc:
            errors.append(repr(exc))
        with lock:
            ids.extend(mine)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + phase.seconds
    cpu, began = time.process_time(), time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join()
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    if errors:
        raise RuntimeError(f"{phase.name}: {len(errors)} thread(s) failed, first: {errors[0]}")
    calls = len(ids) // phase.events
    return {
        "phase": phase.name,
        "calls": calls,
        "events": len(ids),
        "seconds": elapsed,
        "calls_per_s": calls / elapsed,
        "events_per_s": len(ids) / elapsed,
        "client_cpu_ms_per_call": cpu * 1000 / max(calls, 1),
        "ids": ids,
    }


def bare_call(connections: Connections) -> Callable[[Items], list[str]]:
    """The ceiling's call: the items' bytes posted on emit's kind of connections, unsigned, to an app that
    answers at once; one id per item, as the gateway."""

    def call(items: Items) -> list[str]:
        body = orjson.dumps(list(items))
        status, _ = connections.post("/hooks/emit", body, {"content-type": "application/json"})
        assert status == 202, status
        return ["bare"] * len(items)

    return call


def one_run(phases: dict[str, Phase], items: list[dict[str, Any]]) -> dict[str, Any]:
    """Every phase against one fresh gateway, then the ceiling against the bare app; figures and the check."""
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="flowhook-bench-") as tmp:
        data = Path(tmp)
        with gateway_process(data) as (pid, port):
            settings = Settings(data_dir=data, gateway_port=port, sources_file=data / "none.yaml")

            def single(items: Items) -> list[str]:
                return [emit(items[0]["type"], items[0]["data"], settings=settings)]

            calls: dict[str, Callable[[Items], list[str]]] = {
                "old emit()": lambda items: old_emit_many(settings, items),
                "emit()": single,
                "old emit_many": lambda items: old_emit_many(settings, items),
                "emit_many": lambda items: emit_many(items, settings=settings),
            }
            for name, call in calls.items():
                before = cpu_seconds(pid)
                rows[name] = run_threads(phases[name], call, items)
                rows[name]["gateway_cpu_ms_per_call"] = (cpu_seconds(pid) - before) * 1000 / max(rows[name]["calls"], 1)
            close_connections()
        acked = [event_id for name in calls for event_id in rows[name].pop("ids")]
        spooled = spooled_ids(data)
    with bare_server() as (_, port):
        connections = Connections("127.0.0.1", port)
        call = bare_call(connections)
        for name in ("bare HTTP, 1 event", f"bare HTTP, {CHUNK} events"):
            rows[name] = run_threads(phases[name], call, items)
            del rows[name]["ids"]
        connections.close()
    return {
        "rows": list(rows.values()),
        "lost": len(set(acked) - set(spooled)),
        "duplicated": len(spooled) - len(set(spooled)),
        "emit_new_over_old": rows["emit()"]["calls_per_s"] / rows["old emit()"]["calls_per_s"],
        "emit_many_new_over_old": rows["emit_many"]["events_per_s"] / rows["old emit_many"]["events_per_s"],
        "emit_over_bare": rows["emit()"]["calls_per_s"] / rows["bare HTTP, 1 event"]["calls_per_s"],
        "emit_many_over_bare": rows["emit_many"]["events_per_s"] / rows[f"bare HTTP, {CHUNK} events"]["events_per_s"],
    }


RATIOS = ("emit_new_over_old", "emit_many_new_over_old", "emit_over_bare", "emit_many_over_bare")
FIGURES = (
    "calls",
    "events",
    "seconds",
    "calls_per_s",
    "events_per_s",
    "client_cpu_ms_per_call",
    "gateway_cpu_ms_per_call",
)


def _print(run: dict[str, Any], title: str) -> None:
    print(f"\n{title}")
    print(
        f"{'phase':<24} {'calls':>7} {'events':>8} {'s':>6} {'calls/s':>9} {'events/s':>9} "
        f"{'CPU ms/call: client':>20} {'gateway':>8}"
    )
    for r in run["rows"]:
        gateway = "" if r.get("gateway_cpu_ms_per_call") is None else f"{r['gateway_cpu_ms_per_call']:8.2f}"
        print(
            f"{r['phase']:<24} {r['calls']:>7.0f} {r['events']:>8.0f} {r['seconds']:>6.1f} {r['calls_per_s']:>9.0f} "
            f"{r['events_per_s']:>9.0f} {r['client_cpu_ms_per_call']:>20.2f} {gateway}"
        )
    print(
        f"emit() new/old {run['emit_new_over_old']:.1f}x, of the bare ceiling {run['emit_over_bare']:.0%}; emit_many "
        f"new/old {run['emit_many_new_over_old']:.1f}x, of the bare ceiling {run['emit_many_over_bare']:.0%}; "
        f"lost {run['lost']}, duplicated {run['duplicated']}"
    )


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    rows = [
        {"phase": row["phase"], **{k: statistics.median(r["rows"][i][k] for r in runs) for k in FIGURES if k in row}}
        for i, row in enumerate(runs[0]["rows"])
    ]
    ratios = {key: statistics.median(r[key] for r in runs) for key in RATIOS}
    return {
        "rows": rows,
        **ratios,
        "lost": sum(r["lost"] for r in runs),
        "duplicated": sum(r["duplicated"] for r in runs),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=1, help="runs, each against a fresh gateway; medians printed")
    parser.add_argument("--quick", action="store_true", help="a short smoke run: checks lost = 0 and dup = 0")
    args = parser.parse_args()
    scale, seconds = (0.05, 3.0) if args.quick else (1.0, 15.0)
    phases = {
        "old emit()": Phase("old emit()", 1, round(40 * scale) or 1, 10.0),
        "emit()": Phase("emit()", 1, round(2_000 * scale), seconds),
        "old emit_many": Phase(f"old emit_many x{CHUNK}", CHUNK, round(10 * scale) or 1, 10.0),
        "emit_many": Phase(f"emit_many x{CHUNK}", CHUNK, round(50 * scale) or 1, seconds),
        "bare HTTP, 1 event": Phase("bare HTTP, 1 event", 1, round(2_000 * scale), seconds),
        f"bare HTTP, {CHUNK} events": Phase(f"bare HTTP, {CHUNK} events", CHUNK, round(250 * scale) or 1, seconds),
    }
    rng, now = random.Random(7), datetime.now(UTC)
    items = [demo_event(rng, now) for _ in range(5_000)]
    runs = []
    for n in range(args.repeat):
        runs.append(one_run(phases, items))
        _print(runs[-1], f"run {n + 1} of {args.repeat} ({THREADS} threads)")
    median = _median(runs)
    if args.repeat > 1:
        _print(median, f"median of {args.repeat} runs (lost/dup: sums)")
    if not args.quick:
        figures = {"threads": THREADS, "chunk": CHUNK, "runs": runs, "median": median}
        path = write_results("emit_rate", figures)
        print(f"figures written to {path.relative_to(ROOT)}")
    if median["lost"] or median["duplicated"]:
        print("FAILED: acknowledged events lost or doubled")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
