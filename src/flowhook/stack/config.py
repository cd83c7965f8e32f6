"""What the local stack is: where it keeps its state, which ports it binds (127.0.0.1 only), and how many of
each part it runs; kept apart from the supervisor so a test or a benchmark can pick ports without starting anything."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

WORKER_TYPES = ("flowhook", "process")


class StackError(RuntimeError):
    """A part of the local stack failed to start; the message says which and where its log is."""


@dataclass
class StackConfig:
    """Where the stack keeps its state and which ports it binds (127.0.0.1 only)."""

    root: Path
    data_dir: Path
    prefect_port: int = 4200
    gateway_port: int = 8000
    worker_limit: int = 6
    worker_query_seconds: float = 1.0
    local_sqs: bool = False
    start_sources: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)
    prefect_database_url: str | None = None
    """Prefect's database, e.g. `postgresql+asyncpg://postgres@127.0.0.1:5432/prefect`; None: SQLite under <data>."""
    redis: tuple[str, int, int] | None = None
    """(host, port, db) of a Redis that carries Prefect's events, caches, causal ordering and leases (prefect-redis)."""
    api_processes: int = 1
    """Prefect API server processes on the port; over 1 needs Postgres and Redis, and the services get a process."""
    workers: int = 1
    """Workers polling the pool, each with `worker_limit` slots."""
    worker_type: str = "flowhook"
    """The pool's worker type: `flowhook` forks each flow run from a warm process (milliseconds, a few MB);
    `process`, Prefect's own, starts a new Python per run (seconds of CPU importing Prefect)."""
    worker_nice: int = 10
    """The workers' niceness, which their flow runs inherit: on shared cores the gateway's acknowledgements come
    before batch work (a flow run starting or a big batch would otherwise hold a sender's answer back)."""

    def __post_init__(self) -> None:
        if self.worker_type not in WORKER_TYPES:
            raise ValueError(f"worker_type must be one of {', '.join(WORKER_TYPES)}, not {self.worker_type!r}")
        if self.api_processes > 1 and (self.prefect_database_url is None or self.redis is None):
            raise ValueError("more than one Prefect API process needs prefect_database_url (Postgres) and redis")

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.prefect_port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.prefect_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
