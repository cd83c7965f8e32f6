"""The end-to-end tests again, on Prefect past one machine: PostgreSQL for its database, Redis for its
events, caches and leases, two API server processes and two process workers.

Test functions of tests/e2e/test_pipeline.py run again against this module's `local_stack`: webhooks
through triggers to DuckDB with nothing lost or doubled, the sweeper recovering a lost trigger, and a
burst while the API is down. Postgres and Redis are the
machine's own on 127.0.0.1 (CI starts them); each run gets a database and a Redis db of its own.
"""

from __future__ import annotations

import asyncio
import random
import re
import secrets
from collections.abc import Iterator

import pytest
import redis
from prefect.client.orchestration import get_client

from flowhook.names import WORK_POOL
from flowhook.stack import LocalStack
from tests.conftest import e2e_stack_config
from tests.e2e import test_pipeline as pipeline

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

# test_pipeline's tests, collected here too and run in this order on this module's `local_stack`.
prefect_api = pipeline.prefect_api
test_webhooks_reach_duckdb_through_automations = pipeline.test_webhooks_reach_duckdb_through_automations
test_sweeper_launches_a_batch_whose_trigger_was_lost = pipeline.test_sweeper_launches_a_batch_whose_trigger_was_lost
test_a_burst_while_prefect_is_down_is_stored_once_it_returns = (
    pipeline.test_a_burst_while_prefect_is_down_is_stored_once_it_returns
)

POSTGRES = "postgres@127.0.0.1:5432"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


async def _admin(sql: str) -> None:
    import asyncpg

    con = await asyncpg.connect(f"postgresql://{POSTGRES}/postgres", timeout=10)
    try:
        await con.execute(sql)
    finally:
        await con.close()


@pytest.fixture(scope="module")
def prefect_database() -> Iterator[str]:
    """A fresh Postgres database for this module's Prefect server, dropped afterwards."""
    name = f"flowhook_e2e_{secrets.token_hex(4)}"
    try:
        asyncio.run(_admin(f"CREATE DATABASE {name}"))
    except OSError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES} ({exc}); `make test` starts it")
    try:
        yield f"postgresql+asyncpg://{POSTGRES}/{name}"
    finally:
        asyncio.run(_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture(scope="module")
def redis_db() -> Iterator[int]:
    """An empty Redis database (of the 16) for Prefect's messaging, emptied again afterwards."""
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_HOST}:{REDIS_PORT} ({exc}); `make test` starts it")
    free = [n for n in range(1, 16) if redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=n).dbsize() == 0]
    assert free, "every Redis database holds keys: none to use"
    db = random.choice(free)
    try:
        yield db
    finally:
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db).flushdb()


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory, prefect_database: str, redis_db: int) -> Iterator[LocalStack]:
    """The conftest stack, scaled out: Postgres, Redis, 2 API processes, 2 workers."""
    config = e2e_stack_config(
        tmp_path_factory.mktemp("scale-out"),
        local_sqs=True,
        prefect_database_url=prefect_database,
        redis=(REDIS_HOST, REDIS_PORT, redis_db),
        api_processes=2,
        workers=2,
        worker_limit=3,  # 6 slots in all, as on the single-worker stack
        extra_env={"FLOWHOOK_SWEEP_AFTER_SECONDS": "5"},
    )
    with LocalStack(config, progress=lambda message: None) as stack:
        yield stack


def test_the_stack_runs_two_api_processes_on_postgres_and_redis_and_two_workers(
    local_stack: LocalStack, prefect_api: str
) -> None:
    # Runs after the tests above (pytest keeps the module's order).
    server_log = (local_stack.logs / "server.log").read_text()
    assert "Starting server with 2 worker processes" in server_log
    assert "database is locked" not in server_log
    assert {"server", "services", "worker", "worker-2", "gateway"} <= set(local_stack.pids())

    async def workers() -> dict[str, str]:
        async with get_client() as client:
            found = await client.read_workers_for_work_pool(WORK_POOL)
        return {worker.name: worker.status.value for worker in found}

    assert asyncio.run(workers()) == {"flowhook-local": "ONLINE", "flowhook-local-2": "ONLINE"}
    # Which worker takes a run is the server's choice: together they took every one.
    submitted = sum(
        len(re.findall(r"submitting flow run", (local_stack.logs / f"{name}.log").read_text()))
        for name in ("worker", "worker-2")
    )
    assert submitted > 0
