"""End-to-end benchmark: signed webhooks → gateway → Prefect automation → worker flow → DuckDB,
on the real local stack, side by side with the naive path (one event → one flow run), in one run.

It starts the stack `make demo` starts (Prefect server on SQLite, the `flowhook` process pool,
every deployment, a worker, the gateway) in a temporary folder, deploys the naive path from
`bench/prefect.yaml`, and measures, in this order:

1. floor:  Prefect's own emit → flow-complete, an empty flow run per event, one at a time;
2. quiet:  single webhooks one at a time, received → stored, against that floor;
3. naive:  a burst of events through the naive path: completed events/s;
4. levels: open-loop Poisson load from a separate process at each level (events/s stored, ack and
           per-stage latency, flow runs, CPU and peak RSS per part, lost and duplicated);
5. store:  DuckDB's raw Arrow insert rate against flowhook's store write, same rows.

    uv run python bench/pipeline.py             # the full run (~10 min); prints the README table
    uv run python bench/pipeline.py --quick     # ≤ 60 s smoke run for CI: lost = 0 and dup = 0
"""

from __future__ import annotations

import argparse
import functools
import json
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

import httpx
import orjson
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from bench.loadgen import Level, run_load  # noqa: E402
from bench.procstats import Sampler  # noqa: E402
from flowhook.demo import demo_event  # noqa: E402
from flowhook.events import Event, derive_event_id  # noqa: E402
from flowhook.gateway.schemes import sign  # noqa: E402
from flowhook.gateway.secrets import secret_store  # noqa: E402
from flowhook.metrics import latency_stats  # noqa: E402
from flowhook.settings import Settings  # noqa: E402
from flowhook.sources.webhook import SignatureConfig  # noqa: E402
from flowhook.spool import Spool, State  # noqa: E402
from flowhook.stack import LocalStack, StackConfig, free_port  # noqa: E402
from flowhook.store import DuckDBStore  # noqa: E402

STAGES = (("received", "emitted"), ("emitted", "started"), ("started", "stored"), ("received", "stored"))
STAGE_NAMES = ("received→emitted", "emitted→started", "started→stored", "received→stored")


@dataclass(frozen=True)
class Plan:
    floor_samples: int
    quiet_samples: int
    naive_events: int
    levels: list[Level]
    store_rows: int
    drain_timeout: float


FULL = Plan(
    floor_samples=5,
    quiet_samples=5,
    naive_events=20,
    levels=[
        Level(10, 30, 1),
        Level(100, 30, 1),
        Level(1000, 30, 1),
        Level(2000, 20, 1),
        Level(60, 60, 100),
    ],
    store_rows=100_000,
    drain_timeout=240,
)
QUICK = Plan(
    floor_samples=0, quiet_samples=0, naive_events=0, levels=[Level(50, 4, 10)], store_rows=0, drain_timeout=180
)
"""The smoke run CI does (in tests/e2e, on the tests' stack): every acknowledged event stored once."""


def _now() -> datetime:
    return datetime.now(UTC)


class Bench:
    """The stack under test and the probes the phases share."""

    def __init__(self, stack: LocalStack, *, progress: Callable[[str], None]) -> None:
        self.stack = stack
        self.api = stack.config.api_url
        self.http = httpx.Client(timeout=30.0)
        self.progress = progress
        data = stack.config.data_dir
        self.db = DuckDBStore(data / "flowhook.duckdb", lock_timeout=120)
        self.spool = Spool(data / "spool")
        settings = Settings(data_dir=data)
        self.secret = secret_store(settings).secrets("demo", settings.source_configs()["demo"])[0]

    # -- Prefect API helpers ------------------------------------------------------------------
    def deployment_id(self, name: str) -> str:
        flow, dep = name.split("/")
        return str(self.http.get(f"{self.api}/deployments/name/{flow}/{dep}").json()["id"])

    def flow_runs(self, *, deployment_ids: list[str], since: datetime) -> list[dict[str, Any]]:
        body = {
            "deployments": {"id": {"any_": deployment_ids}},
            "flow_runs": {"expected_start_time": {"after_": since.isoformat()}},
            "limit": 200,
        }
        runs: list[dict[str, Any]] = []
        while True:
            page = self.http.post(f"{self.api}/flow_runs/filter", json={**body, "offset": len(runs)}).json()
            runs += page
            if len(page) < 200:
                return runs

    def emit(self, events: list[dict[str, Any]]) -> None:
        self.http.post(f"{self.api}/events", json=events).raise_for_status()

    # -- store helpers --------------------------------------------------------------------------
    def _query_ids(self, sql: str, ids: list[str]) -> list[tuple[Any, ...]]:
        """`sql` over the store with the given ids as a table `wanted(id)`."""
        with self.db.connect() as con:
            con.register("wanted", pa.table({"id": pa.array(ids, pa.string())}))
            return con.execute(sql).fetchall()

    def rows(self, ids: list[str]) -> list[tuple[Any, ...]]:
        """(id, received, emitted, started, stored, flow_run_id, n) of the given ids that are stored."""
        return self._query_ids(
            "SELECT id, any_value(received), any_value(emitted), any_value(started), any_value(stored), "
            "any_value(flow_run_id), count(*) FROM events JOIN wanted USING (id) GROUP BY id",
            ids,
        )

    def count_stored(self, ids: list[str]) -> int:
        [(count,)] = self._query_ids("SELECT count(DISTINCT id) FROM events JOIN wanted USING (id)", ids)
        return int(count)

    def wait_stored(self, ids: list[str], *, timeout: float, poll: float = 1.0) -> float:
        """Wait until every id is in DuckDB; returns the seconds waited (raises on timeout)."""
        start = time.monotonic()
        while True:
            self.stack.check_alive()
            stored = self.count_stored(ids)
            if stored >= len(set(ids)):
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"{len(set(ids)) - stored} of {len(set(ids))} events not stored after {timeout}s")
            time.sleep(poll)

    def wait_idle(self, timeout: float = 120) -> None:
        """Until no flow run of the pool is pending or running (a clean start for the next phase)."""
        body = {"flow_runs": {"state": {"type": {"any_": ["PENDING", "RUNNING", "SCHEDULED"]}}}}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.http.post(f"{self.api}/flow_runs/filter", json=body).json()
            active = [r for r in runs if "source" not in r.get("tags", [])]
            if not active:
                return
            time.sleep(0.5)

    def duplicated_in_spool(self, ids: set[str]) -> int:
        """Events of `ids` that went into more than one batch (the store skips stored ids: it would not show)."""
        seen: dict[str, int] = {}
        for state in (State.CLAIMED, State.DONE):
            for path in (self.spool.root / state.value).glob("*.jsonl"):
                for line in path.read_bytes().splitlines():
                    event_id = orjson.loads(line)["id"]
                    if event_id in ids:
                        seen[event_id] = seen.get(event_id, 0) + 1
        return sum(1 for n in seen.values() if n > 1)

    # -- single deliveries -----------------------------------------------------------------------
    def send_and_wait_stored(self, timeout: float = 120) -> str:
        """Send one event and return its id once its batch is done (stored)."""
        done_before = sum(1 for _ in self.spool.entries(State.DONE))
        event_id = self.send_one()
        deadline = time.monotonic() + timeout
        while sum(1 for _ in self.spool.entries(State.DONE)) <= done_before and time.monotonic() < deadline:
            time.sleep(0.02)
        return event_id

    def send_one(self) -> str:
        body = orjson.dumps({"type": "user_request", "data": _USER, "timestamp": _now().isoformat()})
        msg_id = f"quiet_{uuid.uuid4().hex}"
        headers = sign(SignatureConfig(), body, self.secret, msg_id=msg_id)
        response = self.http.post(
            f"{self.stack.config.gateway_url}/hooks/demo",
            content=body,
            headers={**headers, "content-type": "application/json"},
        )
        response.raise_for_status()
        return str(response.json()["ids"][0])


_USER = {"user_id": "u1", "action": "search", "path": "/search"}


def _seconds(a: Any, b: Any) -> float:
    return float((b - a).total_seconds())


def _stats(values: list[float]) -> dict[str, float] | None:
    s = latency_stats(values)
    return None if s is None else {"p50": s.p50, "p95": s.p95, "p99": s.p99, "max": s.max, "count": s.count}


def _run_end(run: dict[str, Any]) -> datetime | None:
    end = run.get("end_time")
    return None if end is None else datetime.fromisoformat(end)


def _run_start(run: dict[str, Any]) -> datetime | None:
    start = run.get("start_time")
    return None if start is None else datetime.fromisoformat(start)


def phase_floor(bench: Bench, samples: int) -> dict[str, Any]:
    """Prefect's own floor: emit an event, an automation starts an empty flow run; emit → complete."""
    dep = bench.deployment_id("noop-event/floor")
    latencies, starts = [], []
    for i in range(samples):
        since = _now()
        emitted = _now()
        event_id = str(uuid.uuid4())
        bench.emit(
            [
                {
                    "id": event_id,
                    "occurred": emitted.isoformat(),
                    "event": "flowhook.noop.event",
                    "resource": {"prefect.resource.id": f"flowhook.noop.{event_id}"},
                    "payload": {"n": i},
                }
            ]
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            runs = [r for r in bench.flow_runs(deployment_ids=[dep], since=since) if r["state_type"] == "COMPLETED"]
            if runs:
                end, start = _run_end(runs[0]), _run_start(runs[0])
                assert end is not None and start is not None
                latencies.append(_seconds(emitted, end))
                starts.append(_seconds(emitted, start))
                break
            time.sleep(0.1)
        else:
            raise TimeoutError("the floor's flow run did not complete in 120 s")
        bench.progress(f"  floor {i + 1}/{samples}: emit→complete {latencies[-1]:.2f} s")
        time.sleep(1.0)
    return {"emit_to_complete": _stats(latencies), "emit_to_start": _stats(starts)}


def phase_quiet(bench: Bench, samples: int, *, warm: bool) -> dict[str, Any]:
    """Single webhooks, one at a time, each waited for until stored: the latency when nothing queues.

    Cold: each sent once no worker run is awake, so it takes Prefect's whole path (automation →
    worker → new flow-run process). Warm: each sent 1 s after the previous was stored, while the
    run that stored it is still awake.
    """
    ids = []
    if warm:
        bench.wait_idle()
        bench.send_and_wait_stored()  # wakes a run; the samples then find it awake
        time.sleep(1.0)
    for i in range(samples):
        if not warm:
            bench.wait_idle()
        ids.append(bench.send_and_wait_stored())
        bench.progress(f"  {'warm' if warm else 'cold'} {i + 1}/{samples} stored")
        time.sleep(1.0)
    rows = bench.rows(ids)
    run_ids = list({r[5] for r in rows})
    bench.wait_idle()  # the runs have ended: their end times are known
    found = bench.http.post(f"{bench.api}/flow_runs/filter", json={"flow_runs": {"id": {"any_": run_ids}}}).json()
    runs = {r["id"]: r for r in found}
    to_complete = []
    for r in rows:
        end = _run_end(runs.get(r[5], {}))
        if end is not None and not warm:
            to_complete.append(_seconds(r[1].replace(tzinfo=UTC), end))
    return {
        "received_to_stored": _stats([_seconds(r[1], r[4]) for r in rows]),
        "received_to_run_complete": _stats(to_complete),
        "flow_runs": len(run_ids),
        "stages": _stage_stats(rows),
    }


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


def _stage_stats(rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    column = {"received": 1, "emitted": 2, "started": 3, "stored": 4}
    out = {}
    for (a, b), name in zip(STAGES, STAGE_NAMES, strict=True):
        values = [_seconds(r[column[a]], r[column[b]]) for r in rows if r[column[a]] and r[column[b]]]
        out[name] = _stats(values)
    return out


def phase_level(bench: Bench, level: Level, index: int, sampler: Sampler, timeout: float) -> dict[str, Any]:
    """One open-loop load level from a separate process; everything measured about it."""
    process_batch = [
        bench.deployment_id(f"process-batch/{t}") for t in ("user_request", "data_update", "scheduled_tick")
    ]
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
    if plan.floor_samples or plan.naive_events:
        stack.deploy(ROOT / "bench" / "prefect.yaml")
    bench = Bench(stack, progress=say)
    with Sampler({k: v for k, v in stack.pids().items() if k in ("server", "worker", "gateway")}) as sampler:
        if plan.floor_samples:
            say("[bench] floor: Prefect's own emit → flow complete (an empty flow, one at a time)")
            results["floor"] = phase_floor(bench, plan.floor_samples)
        if plan.quiet_samples:
            say("[bench] quiet, cold: one webhook at a time, no worker run awake")
            results["quiet"] = phase_quiet(bench, plan.quiet_samples, warm=False)
            say("[bench] quiet, warm: one webhook at a time, 1 s after the previous was stored")
            results["warm"] = phase_quiet(bench, plan.quiet_samples, warm=True)
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
    config = StackConfig(
        root=ROOT,
        data_dir=keep or Path(tmp.name),
        prefect_port=free_port(),
        gateway_port=free_port(),
        worker_limit=worker_limit,
        extra_env={"PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING"},
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
    levels = results["levels"]
    best = max(levels, key=lambda r: r["stored_events_per_s"])
    lines = [
        f"best level: {best['stored_events_per_s']:,.0f} events/s stored "
        f"(during load {best['stored_during_load_per_s']:,.0f}/s)"
    ]
    if "naive" in results:
        naive = results["naive"]["events_per_second"]
        lines.append(
            f"naive path: {naive:.3f} events/s ({results['naive']['flow_runs']} flow runs for "
            f"{results['naive']['events']} events); best level = {best['stored_events_per_s'] / naive:,.0f}× naive"
        )
    if "quiet" in results and "floor" in results:
        floor = results["floor"]["emit_to_complete"]["p50"]
        quiet = results["quiet"]["received_to_stored"]["p50"]
        lines.append(
            f"quiet (cold) p50 received→stored {quiet:.2f} s vs Prefect floor emit→complete p50 {floor:.2f} s "
            f"(gap {quiet - floor:+.2f} s); warm p50 {results['warm']['received_to_stored']['p50']:.2f} s"
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
    lost = sum(r["lost"] for r in levels)
    dup = sum(r["duplicated"] for r in levels)
    lines.append(f"lost {lost}, duplicated {dup}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="≤ 60 s smoke run for CI: checks lost = 0, dup = 0")
    parser.add_argument("--worker-limit", type=int, default=6, help="flow runs the worker runs at once")
    parser.add_argument("--keep", type=Path, help="keep the stack's data in this folder")
    parser.add_argument("--json", type=Path, help="write every figure to this JSON file")
    args = parser.parse_args()
    results = run(QUICK if args.quick else FULL, worker_limit=args.worker_limit, keep=args.keep)
    print_levels(results["levels"])
    print()
    print_markdown(results["levels"])
    print()
    for line in summarise(results):
        print(line)
    print(
        f"benchmark took {results['seconds']:.0f} s, of which {results['stack_start_seconds']:.0f} s starting the stack"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    bad = [r for r in results["levels"] if r["lost"] or r["duplicated"] or r["acked"] == 0]
    if bad:
        print(f"FAILED: {len(bad)} level(s) lost, duplicated or acknowledged nothing")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
