"""The load process of the benchmarks: signed deliveries at a fixed open-loop (Poisson) rate.

Every request is built and signed before the clock starts, so the generator only writes bytes;
latency is measured from each request's *scheduled* send time, so a stalled server cannot hide
its queueing (no coordinated omission). It runs in a process of its own (`run_load`), or in several
(`run_load(..., processes=N)`) when one process cannot offer the rate beside the server on this machine.
"""

from __future__ import annotations

import asyncio
import gc
import math
import multiprocessing
import queue
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import uvloop

from bench.procstats import pin
from flowhook.demo import demo_event
from flowhook.gateway.schemes import sign
from flowhook.sources.webhook import SignatureConfig


@dataclass(frozen=True)
class Level:
    """One load: `rate` deliveries per second for `seconds`, each carrying `events_per_delivery` events."""

    rate: float
    seconds: float
    events_per_delivery: int

    @property
    def events_per_second(self) -> float:
        return self.rate * self.events_per_delivery

    @property
    def deliveries(self) -> int:
        return max(1, round(self.rate * self.seconds))


TICK = 0.001
"""The load's dispatcher sleeps at least this long (seconds): a request is sent up to this late, on time within it."""

Item = Callable[[random.Random, datetime], dict[str, Any]]
"""Makes one event of a delivery's body (a module-level function: the load process is spawned)."""


def build_requests(
    level: Level, secret: str, port: int, *, seed: int, id_prefix: str = "msg", item: Item = demo_event
) -> list[bytes]:
    """Every request of the run as raw HTTP/1.1 bytes to `/hooks/demo`, Standard Webhooks signed."""
    rng = random.Random(seed)
    scheme = SignatureConfig()
    out = []
    for _ in range(level.deliveries):
        now = datetime.now(UTC)
        items = [item(rng, now) for _ in range(level.events_per_delivery)]
        body = orjson.dumps(items if level.events_per_delivery > 1 else items[0])
        headers = sign(scheme, body, secret, msg_id=f"{id_prefix}_{uuid.uuid4().hex}")
        head = (
            f"POST /hooks/demo HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        )
        out.append(head.encode() + body)
    return out


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return status, await reader.readexactly(length)


async def drive(
    requests: list[bytes],
    rate: float,
    port: int,
    connections: int,
    *,
    seed: int,
    on_off: tuple[float, float] | None = None,
    start_at: float | None = None,
) -> dict[str, Any]:
    """Open loop: request i is due at its Poisson arrival time; it waits for a free connection if none. With
    `on_off` = (on, off) seconds the arrivals come in bursts: `on` seconds at `rate`, then `off` of silence.
    `start_at` (a `time.time()`) is when arrival 0 is due, shared by the processes of one load; default 0.2 s
    from now."""
    rng = random.Random(seed + 1)
    due, t = [], 0.0
    for _ in requests:
        t += rng.expovariate(rate)
        due.append(t if on_off is None else t + (t // on_off[0]) * on_off[1])
    log: list[tuple[float, float, int, int]] = []
    # Connections open on demand, up to `connections`, and the most recently used is reused first: at a
    # low rate a few stay busy instead of many idling into the server's keep-alive timeout.
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    slots = asyncio.Semaphore(connections)
    latencies: list[float] = []
    accepted: list[float] = []  # the latencies of the 202s alone
    statuses: dict[int, int] = {}
    ids: list[str] = []
    sent: list[float] = []  # when each request was written, seconds after the start
    send_lags: list[float] = []  # how long after its due time (no free connection, or the generator behind)
    wake_lags: list[float] = []  # how long after its due time it was picked up (the generator behind alone)
    loop = asyncio.get_running_loop()
    lead = 0.2 if start_at is None else max(0.0, start_at - time.time())
    start = loop.time() + lead
    wall_start = time.time() + lead
    reconnects = 0

    async def one(request: bytes, at: float, woke: float) -> None:
        nonlocal reconnects
        async with slots:
            reader, writer = idle.pop() if idle else await asyncio.open_connection("127.0.0.1", port)
            written = loop.time() - start
            for attempt in (1, 2):
                try:
                    writer.write(request)
                    status, body = await _read_response(reader)
                    break
                except (asyncio.IncompleteReadError, ConnectionError):
                    # The server closed the connection before reading the request (an idle keep-alive
                    # timing out): nothing was processed, so send it again on a new connection.
                    writer.close()
                    if attempt == 2:
                        raise
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    reconnects += 1
            idle.append((reader, writer))
        latencies.append(loop.time() - (start + at))
        sent.append(written)
        send_lags.append(written - at)
        wake_lags.append(woke - at)
        statuses[status] = statuses.get(status, 0) + 1
        accepted_ids = orjson.loads(body)["ids"] if status == 202 else []
        if status == 202:
            accepted.append(latencies[-1])
        ids.extend(accepted_ids)
        log.append((at, latencies[-1], status, len(accepted_ids)))

    # Each request's task is made when it falls due, not all at the start: tens of thousands of sleeping tasks
    # made the timer heap, and every loop turn, the generator's own cost (its lag p99 was 0.25 s at 8,000/s).
    # The dispatcher wakes at most every TICK and starts what fell due meanwhile: shorter sleeps only spin.
    tasks: list[asyncio.Task[None]] = []
    await asyncio.sleep(max(0.0, start - loop.time()))
    while len(tasks) < len(requests):
        now = loop.time() - start
        while len(tasks) < len(requests) and due[len(tasks)] <= now:
            tasks.append(loop.create_task(one(requests[len(tasks)], due[len(tasks)], now)))
        if len(tasks) < len(requests):
            await asyncio.sleep(max(TICK, due[len(tasks)] - (loop.time() - start)))
    await asyncio.gather(*tasks)
    elapsed = loop.time() - start
    for _, writer in idle:
        writer.close()
    return {
        "latencies": latencies,
        "accepted_latencies": accepted,
        "statuses": statuses,
        "ids": ids,
        "elapsed": elapsed,
        "started": wall_start,
        "due": due,
        "reconnects": reconnects,
        "log": sorted(log),
        "sent": sent,
        "send_lags": send_lags,
        "wake_lags": wake_lags,
    }


READY_TIMEOUT = 600.0
"""Seconds a load process waits, its requests built, for the others of the load to be ready too."""


def _load_process(
    level: Level,
    secret: str,
    port: int,
    connections: int,
    id_prefix: str,
    out: Any,
    item: Item,
    on_off: tuple[float, float] | None,
    seed: int,
    index: int = 0,
    go: Any = None,
    start_at: Any = None,
) -> None:
    requests = build_requests(level, secret, port, seed=seed, id_prefix=id_prefix, item=item)
    when = None
    if go is not None:  # one of several: start when the parent says, at the time it sets
        out.put(("ready", index, None))
        if not go.wait(READY_TIMEOUT):
            return
        when = start_at.value
    # The drive keeps every request, task and answer to its end: the cyclic collector would walk them all again
    # and again, stalling the sends for up to a second at 6,000/s (the generator's lag, not the server's).
    gc.collect()
    gc.freeze()
    gc.disable()
    cpu = time.process_time()
    # uvloop, as the servers measured run. With the dispatcher above, against the bare app at 8,000/s, the load's
    # CPU fell by a third and its lag p99 from ~0.25 s to 2 ms; how much of that is uvloop was not measured apart.
    result = uvloop.run(drive(requests, level.rate, port, connections, seed=seed, on_off=on_off, start_at=when))
    gc.enable()
    out.put(("done", index, {**result, "load_cpu_s": time.process_time() - cpu}))


def merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The results of the processes of one load as one: times shifted to the earliest start, lists joined,
    statuses, reconnects and CPU summed; `offered_per_s` is the rate actually written (see `run_load`)."""
    started = min(r["started"] for r in results)
    shifts = [r["started"] - started for r in results]
    sent = [s + shift for r, shift in zip(results, shifts, strict=True) for s in r["sent"]]
    statuses: dict[int, int] = {}
    for r in results:
        for status, n in r["statuses"].items():
            statuses[status] = statuses.get(status, 0) + n
    return {
        "latencies": [x for r in results for x in r["latencies"]],
        "accepted_latencies": [x for r in results for x in r["accepted_latencies"]],
        "statuses": statuses,
        "ids": [x for r in results for x in r["ids"]],
        "elapsed": max(shift + r["elapsed"] for r, shift in zip(results, shifts, strict=True)),
        "started": started,
        "due": sorted(d + shift for r, shift in zip(results, shifts, strict=True) for d in r["due"]),
        "reconnects": sum(r["reconnects"] for r in results),
        "log": sorted((at + shift, *rest) for r, shift in zip(results, shifts, strict=True) for at, *rest in r["log"]),
        "sent": sent,
        "send_lags": [x for r in results for x in r["send_lags"]],
        "wake_lags": [x for r in results for x in r["wake_lags"]],
        "offered_per_s": len(sent) / max(sent) if sent and max(sent) > 0 else 0.0,
        "load_cpu_s": sum(r["load_cpu_s"] for r in results),
        "load_cpu_s_per_process": [r["load_cpu_s"] for r in results],
        "processes": len(results),
    }


def run_load(
    level: Level,
    secret: str,
    port: int,
    *,
    connections: int = 64,
    id_prefix: str = "msg",
    item: Item = demo_event,
    on_off: tuple[float, float] | None = None,
    seed: int = 7,
    processes: int = 1,
    cpus: set[int] | None = None,
) -> dict[str, Any]:
    """Drive one level from a separate (spawned) process, on `cpus` if given; returns latencies (all, and of the
    202s), statuses, acked ids, elapsed, the load process's own CPU seconds while it drove (`load_cpu_s`), the start
    time, each request's due time (seconds after it) and the generator's own log: (due, ack latency, status,
    events accepted) per request, by due time; when each request was written and how late (`sent`, `send_lags`: late
    for want of a free connection or the generator behind), how late it was picked up (`wake_lags`: the generator
    behind alone), and the rate actually offered: requests written per second up to the last one (`offered_per_s`; a
    Poisson sample, so within about 1/sqrt(requests) of the rate when nothing held it back). `item` makes each event
    (default: the demo's mix), `on_off` sends in bursts (see `drive`).

    With `processes` > 1 the level is split across that many processes, each offering `rate / processes` (so
    the sum is still Poisson at `rate`) on `connections / processes` connections of its own, with a seed and
    an id prefix of its own (event ids stay unique); they build their requests, then start together at one
    wall-clock time, and their results are merged (`merge`; `load_cpu_s` is the sum, per process in
    `load_cpu_s_per_process`)."""
    if processes < 1:
        raise ValueError(f"processes must be 1 or more, not {processes}")
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    several = processes > 1
    go = ctx.Event() if several else None
    start_at = ctx.Value("d", 0.0) if several else None
    share = Level(level.rate / processes, level.seconds, level.events_per_delivery)
    children = [
        ctx.Process(
            target=_load_process,
            args=(
                share,
                secret,
                port,
                math.ceil(connections / processes),
                f"{id_prefix}{index}" if several else id_prefix,
                out,
                item,
                on_off,
                seed + 1000 * index,
                index,
                go,
                start_at,
            ),
        )
        for index in range(processes)
    ]
    for child in children:
        child.start()
        if cpus and child.pid is not None:
            pin(child.pid, cpus)  # while it imports: the threads it starts later inherit it
    deadline = time.monotonic() + level.seconds * 20 + 120
    ready: set[int] = set()
    results: dict[int, dict[str, Any]] = {}
    try:
        while len(results) < processes:
            try:
                kind, index, payload = out.get(timeout=1.0)
            except queue.Empty:
                dead = [c for i, c in enumerate(children) if i not in results and not c.is_alive()]
                if dead and out.empty():  # (not a result that arrived as the wait timed out)
                    raise RuntimeError(
                        f"a load process died (exit code {dead[0].exitcode}); see its traceback"
                    ) from None
                if time.monotonic() > deadline:
                    raise TimeoutError("the load process did not finish in time") from None
                continue
            if kind == "ready":
                ready.add(index)
                if len(ready) == processes and start_at is not None and go is not None:
                    start_at.value = time.time() + 0.5  # a margin for every process to wake
                    go.set()
            else:
                results[index] = payload
        return merge([results[i] for i in range(processes)])
    finally:
        for child in children:
            if child.is_alive():
                child.terminate()
        for child in children:
            child.join(30)
