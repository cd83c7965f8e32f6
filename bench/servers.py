"""Servers the benchmarks start on 127.0.0.1, each a process of its own stopped by PID: the gateway alone
(Prefect left out: it forwards to a closed port, so batches wait in the spool), and a bare uvicorn app that
answers every request at once, the ceiling an HTTP client on this machine can reach."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from flowhook.spool import Spool, State
from flowhook.stack import free_port

ROOT = Path(__file__).resolve().parents[1]
_BARE_BODY = b'{"ids":["bare"]}'


def _wait_until_up(process: subprocess.Popen[bytes], url: str, what: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url, timeout=1).is_success:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.1)


@contextmanager
def _process(command: list[str], url: str, what: str, env: dict[str, str] | None = None) -> Iterator[int]:
    """`command` started and answering at `url`; yields its PID; terminated, then waited for, at the end."""
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_until_up(process, url, what)
        yield process.pid
    finally:
        process.terminate()
        process.wait(30)


@contextmanager
def gateway_process(data: Path, env: dict[str, str] | None = None) -> Iterator[tuple[int, int]]:
    """`flowhook gateway` alone with its data in `data`, managed secrets (`data/secrets/`), no hold on
    batches and `env`'s settings besides; yields (PID, port)."""
    port = free_port()
    env = {
        **os.environ,
        "FLOWHOOK_DATA_DIR": str(data),
        "FLOWHOOK_GATEWAY_PORT": str(port),
        "FLOWHOOK_PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api",  # nothing listens: batches wait
        "FLOWHOOK_SOURCES_FILE": str(data / "none.yaml"),
        "FLOWHOOK_BATCH__HOLD_SECONDS": "0",
        # One process, as the bare app is: its CPU and memory are this PID's (with more, a master's children).
        "FLOWHOOK_GATEWAY_WORKERS": "1",
        **(env or {}),
    }
    command = [sys.executable, "-m", "flowhook", "gateway"]
    with _process(command, f"http://127.0.0.1:{port}/health", "the gateway", env) as pid:
        yield pid, port


def spooled_ids(data: Path) -> list[str]:
    """The id of every event in the spool under `data` (read once the gateway has stopped), repeats kept."""
    spool = Spool(data / "spool")
    return [
        event.id
        for state in (State.OPEN, State.READY, State.SENT)
        for path in (spool.root / state.value).rglob("*.jsonl")  # open/: one folder per gateway process
        for event in spool.read(path)
    ]


async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app that reads the request and answers 202 with one id: no verification, parsing or disk."""
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(_BARE_BODY)).encode())]
    await send({"type": "http.response.start", "status": 202, "headers": headers})
    await send({"type": "http.response.body", "body": _BARE_BODY})


@contextmanager
def bare_server() -> Iterator[tuple[int, int]]:
    """`bare_app` on uvicorn with httptools, as the gateway runs; yields (PID, port)."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "bench.servers:bare_app", "--port", str(port), "--http", "httptools"]
    command += ["--lifespan", "off", "--log-level", "warning", "--no-access-log"]
    with _process(command, f"http://127.0.0.1:{port}/", "the bare server") as pid:
        yield pid, port
