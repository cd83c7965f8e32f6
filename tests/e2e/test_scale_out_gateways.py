"""Two gateways as two hosts (issue 21): each with its own inbox on its own disk, both sealing into one S3 spool
(moto's server), Prefect on PostgreSQL and Redis (the machine's own, as in test_scale_out). One gateway is
SIGKILLed mid-burst and started again on the same disk: every acknowledged event is stored once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from flowhook.gateway.schemes import generate_secret
from flowhook.sources.webhook import SignatureConfig
from flowhook.spool import Spool
from flowhook.stack import LocalStack
from flowhook.store import DuckDBStore
from tests import s3
from tests.conftest import e2e_stack_config, free_port
from tests.e2e.test_scale_out import REDIS_HOST, REDIS_PORT, prefect_database, redis_db
from tests.faults.faults import Sender, plan

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

__all__ = ["prefect_database", "redis_db"]  # fixtures, used by name

ROOT = Path(__file__).resolve().parents[2]
SECRET = generate_secret(SignatureConfig())
AMONG = "id IN (SELECT unnest(?::VARCHAR[]))"


@pytest.fixture(scope="module")
def stack(
    moto_s3: str, tmp_path_factory: pytest.TempPathFactory, prefect_database: str, redis_db: int
) -> Iterator[LocalStack]:
    """Host A: the local stack (Prefect on Postgres and Redis, a worker, a gateway) on an S3 spool."""
    bucket = s3.new_bucket(s3.client(moto_s3))
    config = e2e_stack_config(
        tmp_path_factory.mktemp("host-a"),
        prefect_database_url=prefect_database,
        redis=(REDIS_HOST, REDIS_PORT, redis_db),
        api_processes=2,
        extra_env={
            "FLOWHOOK_SPOOL_URL": f"s3://{bucket}/gateways",
            "FLOWHOOK_S3__ENDPOINT_URL": moto_s3,
            "FLOWHOOK_WEBHOOK_SECRET": SECRET,  # both hosts' senders sign with it
            **s3.CREDENTIALS,
            "AWS_CONFIG_FILE": "/nonexistent/aws-config",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
        },
    )
    with LocalStack(config, progress=lambda message: None) as local_stack:
        yield local_stack


def _wait(condition: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


@contextmanager
def _host_b(stack: LocalStack, data: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """Host B's gateway: its own disk (`data`), the same S3 spool and Prefect; stopped with SIGTERM."""
    env = {**stack.env(), "FLOWHOOK_DATA_DIR": str(data), "FLOWHOOK_GATEWAY_PORT": str(port)}
    with (data / "gateway.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "flowhook", "gateway", "--workers", "1"], cwd=ROOT, env=env, stdout=log, stderr=log
        )

    def up() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).is_success
        except httpx.HTTPError:
            return process.poll() is not None

    try:
        _wait(up, "host B's gateway", 60)
        assert process.poll() is None, (data / "gateway.log").read_text()
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(60)


def test_a_gateway_host_killed_mid_burst_loses_nothing_it_acknowledged(
    stack: LocalStack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    data_b, port_b = tmp_path_factory.mktemp("host-b"), free_port()
    urls = [f"{stack.config.gateway_url}/hooks/demo", f"http://127.0.0.1:{port_b}/hooks/demo"]
    senders = [
        Sender(url, SECRET, plan(120, 2, seed=seed), rate=15.0, give_up_after=120.0)
        for seed, url in enumerate(urls * 2)
    ]
    with _host_b(stack, data_b, port_b) as first:
        for sender in senders:
            sender.start()
        time.sleep(3.0)  # mid-burst: 4 senders at 15 deliveries/s for 8 s
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        left_open = len(list((data_b / "spool" / "open").rglob("*.jsonl")))
    time.sleep(1.0)
    with _host_b(stack, data_b, port_b):  # the same disk: its orphaned open batches are sealed and uploaded
        for sender in senders:
            sender.join(180)
        _wait(lambda: not list(Spool(data_b / "spool").open_files()), "host B's open batches", 30)
        acked = sorted({event_id for sender in senders for event_id in sender.acked})
        db = DuckDBStore(stack.config.data_dir / "flowhook.duckdb", lock_timeout=60)

        def stored() -> int:
            if not db.path.exists():
                return 0
            return int(db.query(f"SELECT count(DISTINCT id) FROM events WHERE {AMONG}", [acked])[0][0])

        def all_stored() -> bool:
            stack.check_alive()
            return stored() == len(acked)

        _wait(all_stored, "every acknowledged event stored", 240)
    rows = db.query(f"SELECT count(*) - count(DISTINCT id) FROM events WHERE {AMONG}", [acked])
    print(
        f"two gateway hosts on one S3 spool, host B SIGKILLed mid-burst: acknowledged {len(acked)}, "
        f"stored {stored()}, duplicates {rows[0][0]}, open batch files left by the kill {left_open}, "
        f"deliveries retried {sum(sender.failures for sender in senders)}"
    )
    assert [error for sender in senders for error in sender.errors] == []
    assert len(acked) == sum(d.events for sender in senders for d in sender.deliveries)
    assert rows[0][0] == 0
