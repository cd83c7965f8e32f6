"""The benchmark's quiet section, once per worker type in the same run: Prefect's floor (an empty flow run
per emitted event, through an automation), single webhooks with no run awake (cold) and with one awake
(warm), the CPU-seconds each run start costs the worker's process tree, and each flow-run process's memory.

Between worker types the stack's `flowhook` pool is recreated with the other type and its deployments
deployed again (same server, same gateway, same data), and the worker restarted.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.harness import Bench
from bench.timing import run_end, run_start, seconds, stage_stats, stats
from flowhook.stack import LocalStack

_TICK = os.sysconf("SC_CLK_TCK")
TEMPLATE_MODULE = "flowhook.launcher.template"


def _now() -> datetime:
    return datetime.now(UTC)


def _processes() -> dict[int, tuple[int, float]]:
    """Every process: PID → (parent PID, CPU seconds of it and of the children it reaped)."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        found[int(entry.name)] = (int(fields[1]), sum(int(f) for f in fields[11:15]) / _TICK)
    return found


def _tree(root: int, processes: dict[int, tuple[int, float]]) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in processes.items():
        children.setdefault(ppid, []).append(pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in processes:
            tree.append(pid)
            todo.extend(children.get(pid, []))
    return tree


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds `root` and every process below it have used, with the exited descendants a process of the
    tree reaped (in its cutime/cstime): the worker's, the template's and every flow run's."""
    processes = _processes()
    return sum(processes[pid][1] for pid in _tree(root, processes))


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def flow_run_processes(worker: int) -> list[int]:
    """The flow-run processes of a worker: its children (process worker), or its templates' children."""
    processes = _processes()
    direct = [pid for pid, (ppid, _) in processes.items() if ppid == worker]
    runs = []
    for pid in direct:
        if TEMPLATE_MODULE in _cmdline(pid):
            runs += [child for child, (ppid, _) in processes.items() if ppid == pid]
        else:
            runs.append(pid)
    return runs


def _memory_mb(pid: int) -> dict[str, float] | None:
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
    except OSError:
        return None
    kb = {key: int(value.split()[0]) for key, value in (line.split(":", 1) for line in lines)}
    return {
        "rss": kb["Rss"] / 1024,
        "pss": kb["Pss"] / 1024,
        "private": (kb["Private_Dirty"] + kb["Private_Clean"]) / 1024,
    }


class RunMemory:
    """Samples the memory of the worker's flow-run processes every 0.2 s: each one's peak RSS, PSS and
    private memory, and the peak of their PSS summed (what runs at once actually cost the machine)."""

    def __init__(self, worker: int) -> None:
        self._worker = worker
        self._peaks: dict[int, dict[str, float]] = {}
        self._total_pss = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="run-memory", daemon=True)

    def __enter__(self) -> RunMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            total = 0.0
            for pid in flow_run_processes(self._worker):
                memory = _memory_mb(pid)
                if memory is None:
                    continue
                total += memory["pss"]
                peak = self._peaks.setdefault(pid, dict.fromkeys(memory, 0.0))
                for key, value in memory.items():
                    peak[key] = max(peak[key], value)
            self._total_pss = max(self._total_pss, total)

    def summary(self) -> dict[str, Any]:
        peaks = list(self._peaks.values())
        out: dict[str, Any] = {"runs_seen": len(peaks), "peak_total_pss_mb": round(self._total_pss, 1)}
        for key in ("rss", "pss", "private"):
            values = [p[key] for p in peaks]
            if values:
                out[f"{key}_mb_p50"] = round(statistics.median(values), 1)
                out[f"{key}_mb_max"] = round(max(values), 1)
        return out


def switch_worker_type(
    stack: LocalStack, worker_type: str, *, prefect_files: Sequence[Path], extra_env: dict[str, str]
) -> None:
    """Recreate the pool with `worker_type`, deploy again and restart the worker with `extra_env` (all of it)."""
    for name in [n for n in stack.pids() if n == "worker" or n.startswith("worker-")]:
        stack.stop_part(name)
    stack.config.worker_type = worker_type
    stack.config.extra_env = dict(extra_env)
    stack.create_pool()
    stack.deploy()
    for path in prefect_files:
        stack.deploy(path)
    log = stack.logs / "worker.log"
    offset = log.stat().st_size if log.exists() else 0
    stack.start_worker()
    deadline = time.monotonic() + 120
    # Printed whatever the logging level (the benchmark runs Prefect at WARNING).
    while "started!" not in log.read_text(errors="replace")[offset:]:
        stack.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"the {worker_type} worker did not start within 120 s; see {log}")
        time.sleep(0.2)
    if worker_type == "flowhook":
        _wait_template_warm(stack.pids()["worker"], deadline)


def _wait_template_warm(worker: int, deadline: float) -> None:
    """Until the worker's template exists and has stopped using CPU for a second (its imports are done)."""
    last = -1.0
    while time.monotonic() < deadline:
        processes = _processes()
        templates = [p for p, (ppid, _) in processes.items() if ppid == worker and TEMPLATE_MODULE in _cmdline(p)]
        cpu = sum(processes[p][1] for p in templates)
        if templates and cpu == last:
            return
        last = cpu if templates else -1.0
        time.sleep(1.0)
    raise TimeoutError("the flowhook worker's template did not get warm within 120 s")


def _noop_event(n: int, occurred: datetime) -> dict[str, Any]:
    """A Prefect event whose automation starts the empty flow run of Prefect's floor (`noop-event/floor`)."""
    event_id = str(uuid.uuid4())
    return {
        "id": event_id,
        "occurred": occurred.isoformat(),
        "event": "flowhook.noop.event",
        "resource": {"prefect.resource.id": f"flowhook.noop.{event_id}"},
        "payload": {"n": n},
    }


def phase_floor(bench: Bench, samples: int) -> dict[str, Any]:
    """Prefect's own floor: emit an event, an automation starts an empty flow run; emit → complete."""
    dep = bench.deployment_id("noop-event/floor")
    latencies, starts = [], []
    for i in range(samples):
        since = _now()
        emitted = _now()
        bench.emit([_noop_event(i, emitted)])
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            runs = [r for r in bench.flow_runs(deployment_ids=[dep], since=since) if r["state_type"] == "COMPLETED"]
            if runs:
                end, start = run_end(runs[0]), run_start(runs[0])
                assert end is not None and start is not None
                latencies.append(seconds(emitted, end))
                starts.append(seconds(emitted, start))
                break
            time.sleep(0.1)
        else:
            raise TimeoutError("the floor's flow run did not complete in 120 s")
        bench.progress(f"  floor {i + 1}/{samples}: emit→complete {latencies[-1]:.2f} s")
        time.sleep(1.0)
    return {"emit_to_complete": stats(latencies), "emit_to_start": stats(starts)}


def phase_quiet(bench: Bench, samples: int, *, warm: bool) -> dict[str, Any]:
    """Single webhooks, one at a time, each waited for until stored: the latency when nothing queues.

    Cold: each sent once no worker run is awake, so it takes Prefect's whole path (automation →
    worker → a flow-run process). Warm: each sent 1 s after the previous was stored, while the
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
        end = run_end(runs.get(r[5], {}))
        if end is not None and not warm:
            to_complete.append(seconds(r[1].replace(tzinfo=UTC), end))
    return {
        "received_to_stored": stats([seconds(r[1], r[4]) for r in rows]),
        "received_to_run_complete": stats(to_complete),
        "flow_runs": len(run_ids),
        "stages": stage_stats(rows),
    }


def phase_burst(bench: Bench, worker: int, count: int) -> dict[str, Any]:
    """`count` events at once, each an automation → an empty flow run: how long until all completed, CPU per
    run, and the memory of the runs the worker had at once (its limit caps them)."""
    dep = bench.deployment_id("noop-event/floor")
    since, emitted = _now(), _now()
    cpu, started = tree_cpu_seconds(worker), time.monotonic()
    events = [_noop_event(i, emitted) for i in range(count)]
    with RunMemory(worker) as memory:
        bench.emit(events)
        deadline = time.monotonic() + 900
        while True:
            runs = [r for r in bench.flow_runs(deployment_ids=[dep], since=since) if r["state_type"] == "COMPLETED"]
            if len(runs) >= count:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{count - len(runs)} of the burst's {count} runs did not complete in 900 s")
            time.sleep(0.5)
    ends = [end for end in (run_end(r) for r in runs) if end is not None]
    bench.progress(f"  burst: {count} runs completed in {time.monotonic() - started:.1f} s")
    return {
        "runs": count,
        "seconds_until_all_completed": max(seconds(emitted, end) for end in ends),
        "emit_to_complete": stats([seconds(emitted, end) for end in ends]),
        "cpu_seconds_per_run": (tree_cpu_seconds(worker) - cpu) / count,
        "run_memory": memory.summary(),
    }


def _idle_cpu_rate(worker: int, window: float = 5.0) -> float:
    """CPU seconds per second the worker's tree uses with no run (polling, heartbeats, the event stream)."""
    before = tree_cpu_seconds(worker)
    time.sleep(window)
    return (tree_cpu_seconds(worker) - before) / window


def phase_worker_type(
    bench: Bench, worker_type: str, *, floor: int, cold: int, warm: int, burst: int
) -> dict[str, Any]:
    """Floor, cold, warm and a burst for the worker type running now, with CPU per run start and memory."""
    worker = bench.stack.pids()["worker"]
    bench.wait_idle()
    idle_rate = _idle_cpu_rate(worker)
    out: dict[str, Any] = {"worker_type": worker_type, "worker_idle_cpu_per_s": round(idle_rate, 4)}
    with RunMemory(worker) as memory:
        if floor:
            bench.progress(f"[bench] {worker_type}: floor, an empty flow run per emitted event")
            cpu, started = tree_cpu_seconds(worker), time.monotonic()
            out["floor"] = phase_floor(bench, floor)
            used = tree_cpu_seconds(worker) - cpu
            idle = idle_rate * (time.monotonic() - started)
            out["floor"]["cpu_seconds_per_run"] = used / floor
            out["floor"]["cpu_seconds_per_run_start"] = max(used - idle, 0.0) / floor
        if cold:
            bench.progress(f"[bench] {worker_type}: quiet, cold: one webhook at a time, no worker run awake")
            cpu = tree_cpu_seconds(worker)
            out["cold"] = phase_quiet(bench, cold, warm=False)
            out["cold"]["cpu_seconds_per_run"] = (tree_cpu_seconds(worker) - cpu) / max(out["cold"]["flow_runs"], 1)
        if warm:
            bench.progress(f"[bench] {worker_type}: quiet, warm: one webhook at a time, a run awake")
            out["warm"] = phase_quiet(bench, warm, warm=True)
    out["run_memory"] = memory.summary()
    if burst:
        bench.progress(f"[bench] {worker_type}: a burst of {burst} empty flow runs at once")
        bench.wait_idle()
        out["burst"] = phase_burst(bench, worker, burst)
    return out


def section(
    bench: Bench, worker_types: Sequence[str], *, floor: int, cold: int, warm: int, burst: int, **switch: Any
) -> dict[str, Any]:
    """Every worker type in turn (the stack starts on the first); `switch` goes to `switch_worker_type`."""
    results = {}
    for worker_type in worker_types:
        if bench.stack.config.worker_type != worker_type:
            bench.progress(f"[bench] switching the pool to the {worker_type} worker type")
            switch_worker_type(bench.stack, worker_type, **switch)
        results[worker_type] = phase_worker_type(bench, worker_type, floor=floor, cold=cold, warm=warm, burst=burst)
    return results
