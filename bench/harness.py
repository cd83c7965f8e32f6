"""The stack under test and the probes the benchmark's phases share: Prefect API, store and spool queries,
single signed deliveries. Used by bench/pipeline.py, bench/quiet.py and bench/report_truth.py.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pyarrow as pa

from flowhook.gateway.schemes import sign
from flowhook.gateway.secrets import secret_store
from flowhook.settings import Settings
from flowhook.sources.webhook import SignatureConfig
from flowhook.spool import Spool, State
from flowhook.stack import LocalStack
from flowhook.store import DuckDBStore


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
