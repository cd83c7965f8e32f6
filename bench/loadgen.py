"""The load process of the benchmarks: signed deliveries at a fixed open-loop (Poisson) rate.

Every request is built and signed before the clock starts, so the generator only writes bytes;
latency is measured from each request's *scheduled* send time, so a stalled server cannot hide
its queueing (no coordinated omission). It runs in a process of its own (`run_load`).
"""

from __future__ import annotations

import asyncio
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
) -> dict[str, Any]:
    """Open loop: request i is due at its Poisson arrival time; it waits for a free connection if none. With
    `on_off` = (on, off) seconds the arrivals come in bursts: `on` seconds at `rate`, then `off` of silence."""
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
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.2
    wall_start = time.time() + 0.2
    reconnects = 0

    async def one(request: bytes, at: float) -> None:
        nonlocal reconnects
        await asyncio.sleep(max(0.0, start + at - loop.time()))
        async with slots:
            reader, writer = idle.pop() if idle else await asyncio.open_connection("127.0.0.1", port)
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
        statuses[status] = statuses.get(status, 0) + 1
        accepted_ids = orjson.loads(body)["ids"] if status == 202 else []
        if status == 202:
            accepted.append(latencies[-1])
        ids.extend(accepted_ids)
        log.append((at, latencies[-1], status, len(accepted_ids)))

    await asyncio.gather(*(one(request, at) for request, at in zip(requests, due, strict=True)))
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
    }


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
) -> None:
    requests = build_requests(level, secret, port, seed=seed, id_prefix=id_prefix, item=item)
    cpu = time.process_time()
    result = asyncio.run(drive(requests, level.rate, port, connections, seed=seed, on_off=on_off))
    out.put({**result, "load_cpu_s": time.process_time() - cpu})


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
) -> dict[str, Any]:
    """Drive one level from a separate (spawned) process; returns latencies (all, and of the 202s), statuses,
    acked ids, elapsed, the load process's own CPU seconds while it drove (`load_cpu_s`), the wall-clock start,
    each request's due time (seconds after it) and the generator's own log: (due, ack latency, status, events
    accepted) per request, by due time. `item` makes each event (default: the demo's mix), `on_off` sends in
    bursts (see `drive`)."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    loader = ctx.Process(
        target=_load_process, args=(level, secret, port, connections, id_prefix, out, item, on_off, seed)
    )
    loader.start()
    deadline = time.monotonic() + level.seconds * 20 + 120
    try:
        while True:
            try:
                result: dict[str, Any] = out.get(timeout=1.0)
                return result
            except queue.Empty:
                if not loader.is_alive():
                    raise RuntimeError(
                        f"the load process died (exit code {loader.exitcode}); see its traceback"
                    ) from None
                if time.monotonic() > deadline:
                    raise TimeoutError("the load process did not finish in time") from None
    finally:
        if loader.is_alive():
            loader.terminate()
        loader.join(30)
