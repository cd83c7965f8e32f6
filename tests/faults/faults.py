"""The fault suite's parts: a sender that retries until acknowledged, the faults, and the summary.

A real sender (a SaaS webhook, an SQS producer) retries a delivery until it is acknowledged, with
the same id and body; so does `Sender`. Each fault is injected into the running local stack while
the sender is mid-burst and undone after a while; `FaultLog` keeps when, so the summary can say how
long the pipeline took to store what was acknowledged while each fault lasted.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import random
import shutil
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from prefect.client.orchestration import get_client
from prefect.exceptions import PrefectHTTPStatusError

from flowhook.demo import demo_event
from flowhook.gateway.schemes import sign
from flowhook.sources.webhook import SignatureConfig
from flowhook.stack import LocalStack


@dataclass(frozen=True)
class Delivery:
    msg_id: str
    body: bytes
    events: int


def plan(deliveries: int, events_per_delivery: int, *, seed: int, flaky_every: int = 0) -> list[Delivery]:
    """Deliveries of `events_per_delivery` demo events each, with fixed ids (so a resend is recognisable);
    every `flaky_every`-th carries `flaky` events instead (tests/fixtures/flaky_events.py)."""
    rng = random.Random(seed)
    out = []
    for i in range(deliveries):
        if flaky_every and i % flaky_every == flaky_every - 1:
            items = [{"type": "flaky", "data": {"n": i * events_per_delivery + j}} for j in range(events_per_delivery)]
        else:
            items = [demo_event(rng, datetime.now(UTC)) for _ in range(events_per_delivery)]
        out.append(Delivery(f"msg_{uuid.UUID(int=rng.getrandbits(128)).hex}", orjson.dumps(items), len(items)))
    return out


@dataclass
class Sender:
    """Sends deliveries at a steady rate from a thread; each is retried (same id, same body) until a 202."""

    url: str
    secret: str
    deliveries: Sequence[Delivery]
    rate: float
    give_up_after: float = 600.0
    acked: dict[str, float] = field(default_factory=dict)  # event id -> when its delivery was acknowledged
    acked_deliveries: list[Delivery] = field(default_factory=list)
    delivery_ids: dict[str, list[str]] = field(default_factory=dict)  # msg id -> the event ids of its 202
    attempts: int = 0
    failures: int = 0
    errors: list[str] = field(default_factory=list)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fault-sender", daemon=True)
        self._thread.start()

    def join(self, timeout: float) -> None:
        assert self._thread is not None
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the sender did not finish in time"

    def _run(self) -> None:
        scheme = SignatureConfig()
        start = time.monotonic()
        with httpx.Client(timeout=10.0) as client:
            for i, delivery in enumerate(self.deliveries):
                time.sleep(max(0.0, start + i / self.rate - time.monotonic()))
                self.send(client, scheme, delivery)

    def send(self, client: httpx.Client, scheme: SignatureConfig, delivery: Delivery) -> None:
        deadline = time.monotonic() + self.give_up_after
        while time.monotonic() < deadline:
            self.attempts += 1
            headers = {
                "content-type": "application/json",
                **sign(scheme, delivery.body, self.secret, msg_id=delivery.msg_id),
            }
            try:
                response = client.post(self.url, content=delivery.body, headers=headers)
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code == 202:
                now = time.time()
                ids = response.json()["ids"]
                self.delivery_ids[delivery.msg_id] = ids
                for event_id in ids:
                    self.acked.setdefault(event_id, now)
                self.acked_deliveries.append(delivery)
                return
            if response is not None and response.status_code < 500 and response.status_code != 429:
                self.errors.append(f"{delivery.msg_id}: {response.status_code} {response.text[:200]}")
                return
            self.failures += 1
            time.sleep(0.25)
        self.errors.append(f"{delivery.msg_id}: gave up after {self.give_up_after:g} s")

    def resend(self, deliveries: Sequence[Delivery]) -> None:
        """Deliver again what was acknowledged (a sender that missed the 202), from this thread."""
        with httpx.Client(timeout=10.0) as client:
            for delivery in deliveries:
                self.send(client, SignatureConfig(), delivery)


class Sweeps:
    """Runs the sweeper deployment every `every` seconds from a thread, as its schedule would (the tests'
    stack has Prefect's scheduler off); a run refused while the server is down is simply tried next time."""

    def __init__(self, api_url: str, every: float) -> None:
        self.api_url = api_url
        self.every = every
        self.started = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-sweeps", daemon=True)

    def __enter__(self) -> Sweeps:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        from prefect.deployments import run_deployment
        from prefect.settings import PREFECT_API_URL, temporary_settings

        # Prefect's settings context does not cross threads: without this, Prefect would start a server of its own.
        with temporary_settings(updates={PREFECT_API_URL: self.api_url}):
            while not self._stop.wait(self.every):
                try:
                    run_deployment("sweep-batches/every-minute", timeout=0)
                    self.started += 1
                except Exception:  # the server is down (a fault of the suite): the next round tries again
                    continue


@dataclass
class Fault:
    name: str
    started: float
    ended: float = 0.0
    detail: str = ""


@dataclass
class FaultLog:
    faults: list[Fault] = field(default_factory=list)

    @contextmanager
    def fault(self, name: str, detail: str = "") -> Iterator[Fault]:
        fault = Fault(name, time.time(), detail=detail)
        self.faults.append(fault)
        try:
            yield fault
        finally:
            fault.ended = time.time()


def kill_gateway(stack: LocalStack, down: float) -> str:
    pid = stack.kill_part("gateway")
    time.sleep(down)
    stack.start_gateway()
    return f"SIGKILL gateway pid {pid}, {down:g} s down"


def kill_worker(stack: LocalStack, down: float) -> str:
    """SIGKILL the worker and every flow run it started (a crashed worker machine), then start a new one."""
    runs = stack.flow_run_pids()
    pid = stack.kill_part("worker")
    for run in runs:
        with suppress(ProcessLookupError):
            os.kill(run, signal.SIGKILL)
    time.sleep(down)
    stack.start_worker()
    if stack.config.start_sources:
        stack.start_sources()  # the SQS poller and the files watcher were flow runs of the dead worker
    return f"SIGKILL worker pid {pid} and {len(runs)} flow-run processes, {down:g} s down"


def prefect_outage(stack: LocalStack, down: float) -> str:
    stack.stop_part("server")
    time.sleep(down)
    stack.start_server()
    return f"Prefect server stopped for {down:g} s"


@contextmanager
def store_locked(lock_path: Path) -> Iterator[None]:
    """Hold the DuckDB file's lock as another process would: every writer times out meanwhile."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextmanager
def disk_full(folder: Path, *, leave: int = 4096) -> Iterator[str]:
    """Fill the file system holding `folder` until `leave` bytes are free; free it again on exit.

    Yields what was there before (file sizes), so the summary shows what the full disk held.
    """
    before = ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in sorted(folder.iterdir()) if p.is_file())
    filler = folder / "filler.bin"
    free = shutil.disk_usage(folder).free - leave
    written = 0
    try:
        with filler.open("wb") as fh:
            chunk = b"\0" * (1 << 20)
            while written < free:
                written += fh.write(chunk[: min(len(chunk), free - written)])
            fh.flush()
            os.fsync(fh.fileno())
    except OSError:
        pass  # full already
    try:
        yield f"{written / 1e6:.0f} MB filler beside {before or 'nothing'}"
    finally:
        filler.unlink(missing_ok=True)


def set_automations(*, enabled: bool) -> int:
    """Pause or resume every automation on the server (a trigger path that drops its actions)."""

    async def flip() -> int:
        async with get_client() as client:
            automations = await client.read_automations()
            for automation in automations:
                for attempt in range(5):  # Prefect on SQLite answers 503 under a burst ("database is locked")
                    try:
                        if enabled:
                            await client.resume_automation(automation.id)
                        else:
                            await client.pause_automation(automation.id)
                        break
                    except PrefectHTTPStatusError:
                        if attempt == 4:
                            raise
                        await asyncio.sleep(1.0 + attempt)
            return len(automations)

    return asyncio.run(flip())


def summary_table(
    rows: Sequence[tuple[str, Any]], faults: Sequence[Fault], recover: Callable[[Fault], float | None]
) -> str:
    """The suite's closing table: one line per figure, then one per fault with its time to recover."""
    width = max(len(name) for name, _ in rows)
    lines = ["", "fault-injection summary", "-" * 60]
    lines += [f"{name:<{width}}  {value}" for name, value in rows]
    lines += ["-" * 60, f"{'fault':<16} {'lasted':>8} {'recovered':>10}  detail"]
    for fault in faults:
        seconds = recover(fault)
        recovered = "—" if seconds is None else f"{seconds:.1f} s"
        lines.append(f"{fault.name:<16} {fault.ended - fault.started:>7.1f}s {recovered:>10}  {fault.detail}")
    return "\n".join(lines)
