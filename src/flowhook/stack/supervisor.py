"""`LocalStack` supervises the local stack's child processes: starts each part in order, waits until it is
healthy, and stops them all (with the flow runs they started) in reverse."""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx
import yaml

from flowhook.names import SOURCE_DEPLOYMENTS, WORK_POOL
from flowhook.prefect_api import sync_client
from flowhook.stack.config import StackConfig, StackError, free_port, port_is_free
from flowhook.stack.local_sqs import create_local_queues, local_sqs_client
from flowhook.stack.processes import descendants, exited, gone, prefect_cli, terminate
from flowhook.uptime import mark_started, mark_stopped

AUTOMATIONS_FILE = Path("deployments") / "automations.yaml"
"""Automations beside the deployment triggers (created by `create_automations`)."""


class LocalStack:
    """Starts the parts in order, waits for each to be healthy, and stops them all in reverse."""

    def __init__(self, config: StackConfig, *, progress: Callable[[str], None] = print) -> None:
        self.config = config
        self._progress = progress
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._sqs_env: dict[str, str] = {}
        self.logs = config.data_dir / "logs"

    def env(self) -> dict[str, str]:
        """The environment every child gets: Prefect and flowhook pointed at this stack."""
        cfg = self.config
        env = dict(os.environ)
        env.update(
            {
                "PREFECT_HOME": str(cfg.data_dir / "prefect"),
                "PREFECT_API_URL": cfg.api_url,
                "PREFECT_SERVER_API_HOST": "127.0.0.1",
                "PREFECT_SERVER_API_PORT": str(cfg.prefect_port),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_WORKER_QUERY_SECONDS": str(cfg.worker_query_seconds),
                "PREFECT_UI_URL": cfg.ui_url,
                "FLOWHOOK_DATA_DIR": str(cfg.data_dir),
                "FLOWHOOK_PREFECT_API_URL": cfg.api_url,
                "FLOWHOOK_GATEWAY_PORT": str(cfg.gateway_port),
                # One gateway process unless asked for more: the stack's Prefect server and worker share these
                # cores (README, issue 21).
                "FLOWHOOK_GATEWAY_WORKERS": os.environ.get("FLOWHOOK_GATEWAY_WORKERS", "1"),
                "PWD": str(cfg.root),
                "PYTHONUNBUFFERED": "1",
                # Flow runs send heartbeats, so one whose process died is marked Crashed
                # (deployments/automations.yaml) and frees its deployment's concurrency slot.
                "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
                # Flow runs start as `python -m prefect.engine` (prefect.yaml): that `python` must be this
                # environment's, also when flowhook was started as `.venv/bin/flowhook` without activating it.
                "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            }
        )
        if cfg.prefect_database_url is not None:
            env["PREFECT_API_DATABASE_CONNECTION_URL"] = cfg.prefect_database_url
        if cfg.api_processes > 1:
            env["PREFECT_API_DATABASE_MIGRATE_ON_START"] = "false"  # `start_server` migrates first, once
        if cfg.redis is not None:
            host, port, db = cfg.redis
            env.update(
                {
                    "PREFECT_MESSAGING_BROKER": "prefect_redis.messaging",
                    "PREFECT_MESSAGING_CACHE": "prefect_redis.messaging",
                    "PREFECT_SERVER_EVENTS_CAUSAL_ORDERING": "prefect_redis.ordering",
                    "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect_redis.lease_storage",
                    "PREFECT_REDIS_MESSAGING_HOST": host,
                    "PREFECT_REDIS_MESSAGING_PORT": str(port),
                    "PREFECT_REDIS_MESSAGING_DB": str(db),
                }
            )
        env.update(self._sqs_env)
        env.update(cfg.extra_env)
        if env.get("PREFECT_SERVER_API_AUTH_STRING") and not env.get("PREFECT_API_AUTH_STRING"):
            # The stack's own server guards its API with this string: its clients (worker, deploy, gateway) send it.
            env["PREFECT_API_AUTH_STRING"] = env["PREFECT_SERVER_API_AUTH_STRING"]
        return env

    def api(self, *, timeout: float = 30.0) -> httpx.Client:
        """A client of this stack's Prefect API with the credentials its children send (`env()`)."""
        return sync_client(self.config.api_url, timeout=timeout, env=self.env())

    def start(self) -> None:
        cfg = self.config
        for name, port in (("Prefect server", cfg.prefect_port), ("gateway", cfg.gateway_port)):
            if not port_is_free(port):
                raise StackError(
                    f"port {port} for the {name} is in use on 127.0.0.1; stop what holds it or pick another"
                )
        self.logs.mkdir(parents=True, exist_ok=True)
        mark_started(cfg.data_dir)
        database = "Postgres" if cfg.prefect_database_url else f"SQLite under {cfg.data_dir / 'prefect'}"
        broker = ", Redis" if cfg.redis else ""
        processes = f", {cfg.api_processes} API processes" if cfg.api_processes > 1 else ""
        self._progress(f"starting Prefect server on {cfg.ui_url} ({database}{broker}{processes})")
        self.start_server()
        if cfg.local_sqs:
            self._start_moto()
        self._progress(f"creating work pool {WORK_POOL!r} ({cfg.worker_type} workers) and deploying prefect.yaml")
        self.create_pool()
        self.deploy()
        self.create_automations()
        self._progress("starting worker and gateway")
        self.start_worker()
        self.start_gateway()
        if cfg.start_sources:
            self._progress(f"starting the sources: {' and '.join(SOURCE_DEPLOYMENTS)}")
            self.start_sources()

    def create_pool(self) -> None:
        """The `flowhook` pool of the configured worker type; one of another type is deleted first (a pool's type
        cannot change), its deployments following it on the next `deploy`."""
        pool = httpx.get(f"{self.config.api_url}/work_pools/{WORK_POOL}", timeout=30.0)
        if pool.status_code == 200 and pool.json()["type"] != self.config.worker_type:
            self._run("pool", [*prefect_cli(), "work-pool", "delete", WORK_POOL])
        argv = [*prefect_cli(), "work-pool", "create", WORK_POOL, "--type", self.config.worker_type, "--overwrite"]
        self._run("pool", argv)

    def deploy(self, prefect_file: Path | None = None) -> None:
        """`prefect deploy --all` of `prefect.yaml` (or another file of deployments) to this stack."""
        extra = [] if prefect_file is None else ["--prefect-file", str(prefect_file)]
        self._run("deploy", [*prefect_cli(), "--no-prompt", "deploy", "--all", *extra])

    def create_automations(self) -> None:
        """The automations of `deployments/automations.yaml` that the server does not have yet (by name)."""
        path = self.config.root / AUTOMATIONS_FILE
        wanted = [a["name"] for a in yaml.safe_load(path.read_text())["automations"]]
        with self.api() as api:
            found = api.post("automations/filter", json={}).raise_for_status().json()
        if set(wanted) - {a["name"] for a in found}:
            self._run("automations", [*prefect_cli(), "--no-prompt", "automation", "create", "--from-file", str(path)])

    def pids(self) -> dict[str, int]:
        """The PID of each long-running part, by name (`server`, `worker`, `gateway`, ...)."""
        return {name: proc.pid for name, proc in self._procs if proc.poll() is None}

    def _wait_running(self, *, tag: str, count: int, timeout: float) -> None:
        body = {"flow_runs": {"tags": {"all_": [tag]}, "state": {"type": {"any_": ["RUNNING"]}}}}
        deadline = time.monotonic() + timeout
        with self.api(timeout=5.0) as api:
            while time.monotonic() < deadline:
                self.check_alive()
                try:
                    running = api.post("flow_runs/count", json=body).raise_for_status().json()
                except (httpx.HTTPError, ValueError):
                    running = 0
                if isinstance(running, int) and running >= count:
                    return
                time.sleep(0.5)
        self._progress(f"the source flow runs are not all running after {timeout:.0f}s; going on")

    def _start_moto(self) -> None:
        """A local SQS (moto's standalone server) with a queue and its dead-letter queue."""
        port = free_port()
        endpoint = f"http://127.0.0.1:{port}"
        self._progress(f"starting a local SQS (moto) on {endpoint}")
        self._spawn("moto", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)])
        self._wait_healthy("moto", f"{endpoint}/moto-api/", timeout=60)
        credentials = {
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        queue_url, dlq_url = create_local_queues(endpoint, credentials)
        self._sqs_env = {
            **credentials,
            "FLOWHOOK_SQS__QUEUE_URL": queue_url,
            "FLOWHOOK_SQS__ENDPOINT_URL": endpoint,
            "FLOWHOOK_SQS__BATCH_SIZE": "500",
            "FLOWHOOK_SQS__BATCHING_WINDOW_SECONDS": "1",
            "FLOWHOOK_SQS__WAIT_TIME_SECONDS": "5",
            "FLOWHOOK_SQS_DLQ_URL": dlq_url,
        }

    @property
    def sqs_env(self) -> dict[str, str]:
        """The local SQS queue's settings (empty unless `local_sqs`)."""
        return dict(self._sqs_env)

    @property
    def sqs_client(self) -> Any:
        """A boto3 SQS client for the local queue, or None without one."""
        if not self._sqs_env:
            return None
        return local_sqs_client(self._sqs_env["FLOWHOOK_SQS__ENDPOINT_URL"], self._sqs_env)

    def start_server(self) -> None:
        """Start the Prefect server (again, after `stop_part("server")`: same port, same database)."""
        cfg = self.config
        # `prefect server start`, its SQLite writes begun IMMEDIATE (flowhook.prefect_server says why).
        server = [sys.executable, "-m", "flowhook.prefect_server", "server", "start"]
        argv = [*server, "--host", "127.0.0.1", "--port", str(cfg.prefect_port)]
        if cfg.api_processes > 1:
            # Each API process would migrate the database as it starts, all at once: migrate first, once. The
            # API processes run no services: one process of their own runs them.
            self._run("migrate", [*prefect_cli(), "server", "database", "upgrade", "--yes"])
            argv += ["--workers", str(cfg.api_processes)]
        self._spawn("server", argv)
        self._wait_healthy("server", f"{cfg.api_url}/health", timeout=90)
        if cfg.api_processes > 1 and "services" not in self.pids():
            self._spawn("services", [*prefect_cli(), "server", "services", "start"])

    def start_sources(self) -> None:
        """Run the long-running source deployments (again, after their flow runs died with a worker)."""
        for deployment in SOURCE_DEPLOYMENTS:
            for attempt in range(3):  # a server on SQLite under a burst may answer "database is locked"
                try:
                    self._run("sources", [*prefect_cli(), "deployment", "run", deployment])
                    break
                except StackError:
                    if attempt == 2:
                        raise
                    time.sleep(2.0)
        # Their flow-run processes cost seconds of CPU to start: let that pass before any load.
        self._wait_running(tag="source", count=len(SOURCE_DEPLOYMENTS), timeout=90)

    def start_worker(self) -> None:
        """Start the workers of the `flowhook` pool (again, after they stopped or were killed): `worker`
        (named flowhook-local on the server), then `worker-2`, ... when the stack has more than one."""
        running = self.pids()
        for n in range(1, self.config.workers + 1):
            name, server_name = ("worker", "flowhook-local") if n == 1 else (f"worker-{n}", f"flowhook-local-{n}")
            if name in running:
                continue
            argv = [*prefect_cli(), "worker", "start", "--pool", WORK_POOL, "--type", self.config.worker_type]
            argv += ["--limit", str(self.config.worker_limit), "--name", server_name]
            self._spawn(name, argv, nice=self.config.worker_nice)

    def start_gateway(self) -> None:
        """Start the gateway and wait until it answers (again, after it stopped or was killed)."""
        self._spawn("gateway", [sys.executable, "-m", "flowhook", "gateway"])
        self._wait_healthy("gateway", f"{self.config.gateway_url}/health", timeout=60)

    def flow_run_pids(self) -> list[int]:
        """PIDs of the processes the worker started (flow runs and what they started)."""
        worker = self.pids().get("worker")
        return [] if worker is None else descendants(worker)

    def kill_part(self, name: str) -> int:
        """SIGKILL one part, as a crash would, and forget it (its flow runs live on); returns its PID."""
        for entry in [p for p in self._procs if p[0] == name]:
            self._procs.remove(entry)
            entry[1].kill()
            entry[1].wait(10)
            return entry[1].pid
        raise StackError(f"no running part is named {name!r}")

    def stop(self) -> None:
        """Stop every child, newest first, with the flow-run processes the worker started."""
        while self._procs:
            self._stop(*self._procs.pop())
        mark_stopped(self.config.data_dir)

    def stop_part(self, name: str) -> None:
        """Stop one part (e.g. the server, to rehearse an outage); the others keep running."""
        for entry in [p for p in self._procs if p[0] == name]:
            self._procs.remove(entry)
            self._stop(*entry)

    def _stop(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is not None:
            return
        self._progress(f"stopping {name}")
        # Flow runs start in sessions of their own: find them before their worker is gone.
        orphans = descendants(proc.pid)
        terminate(proc.pid, functools.partial(exited, proc))
        for pid in orphans:
            terminate(pid, functools.partial(gone, pid), group=False)

    def __enter__(self) -> LocalStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def check_alive(self) -> None:
        """Raise if a long-running child has died (its log says why)."""
        for name, proc in self._procs:
            if proc.poll() is not None:
                raise StackError(f"the {name} exited with code {proc.returncode}; see {self.logs / name}.log")

    def _spawn(self, name: str, argv: list[str], *, nice: int = 0) -> None:
        """Start a long-running child in a session of its own, so Ctrl-C reaches only us; `nice`: its niceness
        (set at once, while it imports: what it starts later inherits it)."""
        with (self.logs / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(argv, **self._child_io(log), start_new_session=True)
        self._procs.append((name, proc))
        if nice:
            with contextlib.suppress(ProcessLookupError):  # it died at once: check_alive says so
                os.setpriority(os.PRIO_PROCESS, proc.pid, os.getpriority(os.PRIO_PROCESS, 0) + nice)

    def _run(self, name: str, argv: list[str]) -> None:
        with (self.logs / f"{name}.log").open("ab") as log:
            done = subprocess.run(argv, **self._child_io(log), timeout=300, check=False)
        if done.returncode != 0:
            raise StackError(f"`{' '.join(argv[2:])}` failed (exit {done.returncode}); see {self.logs / name}.log")

    def _child_io(self, log: IO[bytes]) -> dict[str, Any]:
        return {
            "cwd": self.config.root,
            "env": self.env(),
            "stdout": log,
            "stderr": subprocess.STDOUT,
            "stdin": subprocess.DEVNULL,
        }

    def _wait_healthy(self, name: str, url: str, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if httpx.get(url, timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise StackError(f"the {name} did not become healthy within {timeout:.0f}s; see {self.logs / name}.log")
