"""Real servers for tests: the gateway app on a loopback socket in a background thread; a lone Prefect server."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvicorn
from fastapi import FastAPI, Request

from flowhook.gateway import MemorySink, create_app
from flowhook.gateway.forwarder import BatchSink
from flowhook.gateway.http import server_config
from flowhook.settings import Settings
from flowhook.stack import LocalStack, StackConfig, free_port

ROOT = Path(__file__).resolve().parents[1]
IDLE_SERVICES = (
    "SCHEDULER", "LATE_RUNS", "FOREMAN", "REPOSSESSOR", "CANCELLATION_CLEANUP", "PAUSE_EXPIRATIONS", "DB_VACUUM",
    "CLEANUP_RECONCILER", "TASK_RUN_RECORDER", "EVENT_PERSISTER", "EVENT_LOGGER", "TRIGGERS",
)  # fmt: skip
"""Server services a test of blocks, pools or deployments needs none of; without them the server starts faster."""


@contextmanager
def serve(settings: Settings, sink: BatchSink | None = None) -> Iterator[httpx.Client]:
    """The app on a real server in a background thread, configured as `flowhook gateway` runs it (bounded
    protocol, the settings' timeouts and connection cap); a client for it."""
    app = create_app(settings, sink=sink or MemorySink())
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(server_config(app, settings, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="gateway", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive(), "the server stopped during startup"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
    assert not thread.is_alive(), "the server did not stop"


@contextmanager
def counting_proxy(port: int) -> Iterator[tuple[int, list[int]]]:
    """A TCP proxy on 127.0.0.1 in front of `port`, so a test can count connections where a server sees them:
    yields its port and the client port of every connection it accepted, in order."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    accepted: list[int] = []
    stop = threading.Event()

    def pipe(source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        for end in (source, target):  # one side closed: close both, as a server would
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
        source.close()  # the other direction's pipe closes `target`

    def accept() -> None:
        while not stop.is_set():
            try:
                client, (_, client_port) = listener.accept()
            except TimeoutError:
                continue
            accepted.append(client_port)
            client.settimeout(None)
            upstream = socket.create_connection(("127.0.0.1", port))
            for ends in ((client, upstream), (upstream, client)):
                threading.Thread(target=pipe, args=ends, name="proxy", daemon=True).start()

    thread = threading.Thread(target=accept, name="proxy", daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], accepted
    finally:
        stop.set()
        thread.join(5)
        listener.close()


@contextmanager
def events_api(port: int) -> Iterator[list[dict[str, Any]]]:
    """A stand-in for Prefect's `POST /api/events` on `port`, recording the events it is sent."""
    received: list[dict[str, Any]] = []
    app = FastAPI()

    @app.post("/api/events", status_code=204)
    async def events(request: Request) -> None:
        received.extend(orjson.loads(await request.body()))

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield received
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def prefect_server(data_dir: Path) -> Iterator[str]:
    """A Prefect server alone (SQLite under `data_dir`, no UI, idle services off), the default API of this
    process while it runs (its URL is yielded); stopped by PID at the end."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    config = StackConfig(
        root=ROOT,
        data_dir=data_dir,
        prefect_port=free_port(),
        extra_env={
            "PREFECT_SERVER_UI_ENABLED": "false",
            **{f"PREFECT_SERVER_SERVICES_{name}_ENABLED": "false" for name in IDLE_SERVICES},
        },
    )
    stack = LocalStack(config, progress=lambda message: None)
    stack.logs.mkdir(parents=True, exist_ok=True)
    try:
        stack.start_server()
        with temporary_settings(updates={PREFECT_API_URL: config.api_url}):
            yield config.api_url
    finally:
        stack.stop()
