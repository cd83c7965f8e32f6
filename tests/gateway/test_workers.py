"""Several gateway processes on one spool (issue 21), all real: `flowhook gateway --workers 2` on a loopback
socket, its spool on disk, one process SIGKILLed mid-load, and the worker's own step code writing a real DuckDB
file; and two processes sealing batches of one type at once, counting the runs they wake."""

from __future__ import annotations

import gc
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from flowhook.events import load_catalog
from flowhook.gateway.schemes import generate_secret
from flowhook.settings import Settings
from flowhook.sources.webhook import SignatureConfig
from flowhook.spool import Spool, State
from flowhook.spool.batches import event_type_of
from flowhook.store import DuckDBStore
from flowhook.worker.steps import process_step
from tests.faults.faults import Sender, plan

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children(pid: int) -> list[int]:
    """The PIDs of a process's children (Linux)."""
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _until(condition: object, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@contextmanager
def _gateway(data: Path, port: int, secret: str, workers: int) -> Iterator[subprocess.Popen[bytes]]:
    """`flowhook gateway --workers N` with Prefect unreachable (batches wait in the spool); SIGTERM at the end."""
    env = {
        **os.environ,
        "FLOWHOOK_DATA_DIR": str(data),
        "FLOWHOOK_GATEWAY_PORT": str(port),
        "FLOWHOOK_WEBHOOK_SECRET": secret,
        "FLOWHOOK_SOURCES_FILE": str(data / "none.yaml"),
        "FLOWHOOK_PREFECT_API_URL": f"http://127.0.0.1:{_free_port()}/api",
        # After a type's first batch (sealed at once to wake a run, which never comes), its batches stay open
        # 1 s: the killed process leaves open batches behind.
        "FLOWHOOK_BATCH__MAX_SECONDS": "1.0",
        "FLOWHOOK_BATCH__HOLD_SECONDS": "0",
        "FLOWHOOK_DRAIN__WAKE_LOST_SECONDS": "600",
    }
    log = (data / "gateway.log").open("ab")
    command = [sys.executable, "-m", "flowhook", "gateway", "--workers", str(workers)]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
    try:

        def up() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).is_success
            except httpx.HTTPError:
                return process.poll() is not None

        _until(up, "the gateway", 60)
        assert process.poll() is None, (data / "gateway.log").read_text()
        yield process
    finally:
        process.terminate()
        try:
            process.wait(40)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _drain(settings: Settings) -> int:
    """One pass of what awake worker runs do, without Prefect: claim every waiting batch, handle, store, complete."""
    spool, store, catalog = Spool(settings.spool_dir), DuckDBStore(settings.database), load_catalog()
    types = {event_type_of(batch_id) for state in (State.READY, State.SENT) for batch_id, _ in spool.entries(state)}
    steps = 0
    for event_type in sorted(types):
        while batches := spool.pending(event_type, max_events=10_000):
            process_step(
                batches,
                owner="test-run",
                spool=spool,
                store_to=store,
                catalog=catalog,
                policy_for_type=settings.retry_policy,
            )
            steps += 1
    return steps


@pytest.mark.timeout(240)
def test_a_process_killed_mid_load_loses_nothing_it_acknowledged(tmp_path: Path) -> None:
    secret = generate_secret(SignatureConfig())
    settings = Settings(data_dir=tmp_path)
    port = _free_port()
    senders = [
        Sender(f"http://127.0.0.1:{port}/hooks/demo", secret, plan(240, 3, seed=seed), rate=60.0, give_up_after=60.0)
        for seed in range(3)
    ]
    with _gateway(tmp_path, port, secret, workers=2) as master:
        _until(lambda: len(_children(master.pid)) == 2, "two gateway processes", 30)
        for sender in senders:
            sender.start()
        time.sleep(1.5)  # mid-load: 3 senders at 60 deliveries/s each, for 4 s
        open_root = settings.spool_dir / State.OPEN.value

        def holding_open_batches() -> list[int]:
            """The children with open batches now (the kernel may give every connection to one of them)."""
            return [pid for pid in _children(master.pid) if list(open_root.glob(f"{pid}-*/*.jsonl"))]

        _until(holding_open_batches, "a gateway process with open batches", 10)
        victim = holding_open_batches()[0]
        os.kill(victim, signal.SIGKILL)
        orphaned = [len(list(slot.glob("*.jsonl"))) for slot in open_root.glob(f"{victim}-*")]
        for sender in senders:
            sender.join(120)
        # The survivor (or the victim's replacement) seals the orphan's open batches within seconds.
        _until(lambda: not list(open_root.glob(f"{victim}-*")), "the orphaned slot to be recovered", 30)
        _until(lambda: len(_children(master.pid)) == 2, "the master to start another process", 30)
        assert victim not in _children(master.pid)
    _drain(settings)  # what the runs would do: every batch the gateways sealed, into DuckDB
    acked = {event_id for sender in senders for event_id in sender.acked}
    with DuckDBStore(settings.database).connect() as con:
        rows = con.execute("SELECT id, count(*) FROM events GROUP BY id").fetchall()
    stored = {event_id: n for event_id, n in rows}
    duplicates = sum(n - 1 for n in stored.values())
    retried = sum(sender.failures for sender in senders)
    print(
        f"two gateway processes, one SIGKILLed mid-load: acknowledged {len(acked)}, stored {len(stored)}, "
        f"duplicates {duplicates}, open batches orphaned {sum(orphaned)}, deliveries retried {retried}"
    )
    assert [error for sender in senders for error in sender.errors] == []
    assert sum(orphaned) > 0  # the kill left acknowledged events in open batches: the recovery is tested
    assert len(acked) == sum(d.events for sender in senders for d in sender.deliveries)
    assert acked - stored.keys() == set()
    assert duplicates == 0
    assert list(Spool(settings.spool_dir).open_files()) == []  # the stop sealed every open batch


@pytest.mark.timeout(120)
def test_two_processes_sealing_one_type_at_once_wake_one_run(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    command = [sys.executable, "-m", "tests.gateway.sealer", str(tmp_path)]
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.DEVNULL}
    processes = [subprocess.Popen([*command, str(first)], cwd=ROOT, text=True, **pipes) for first in (0, 10_000)]
    rounds, woken = 10, []
    try:
        for process in processes:
            assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        sent = [0, 0]
        for _ in range(rounds):
            for process in processes:  # both append (and seal at once) at the same moment
                assert process.stdin is not None
                process.stdin.write("go\n")
                process.stdin.flush()
            now = [int(process.stdout.readline()) for process in processes if process.stdout is not None]
            woken.append(sum(now) - sum(sent))
            sent = now
            for state in (State.READY, State.SENT):  # the woken run takes both batches
                for batch_id, _ in list(spool.entries(state)):
                    if spool.claim(batch_id) is not None:
                        spool.complete(batch_id)
    finally:
        for process in processes:
            if process.stdin is not None:
                process.stdin.close()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    print(f"two processes sealing one type at once, {rounds} rounds: runs woken per round {woken}")
    assert woken == [1] * rounds


def test_a_serving_process_freezes_what_it_built_before_it_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The imports and the app are out of the cyclic collector's sight once serving starts: its full collections
    would otherwise walk them all, stopping the event loop for tenths of a second under load."""
    import uvicorn

    from flowhook.gateway import workers

    frozen_when_served: list[int] = []
    monkeypatch.setattr(
        uvicorn.Server, "run", lambda self, sockets=None: frozen_when_served.append(gc.get_freeze_count())
    )
    monkeypatch.setenv("FLOWHOOK_DATA_DIR", str(tmp_path))
    gc.unfreeze()
    try:
        workers._serve_here(Settings(), None)
    finally:
        gc.unfreeze()
    assert frozen_when_served and frozen_when_served[0] > 50_000, frozen_when_served
