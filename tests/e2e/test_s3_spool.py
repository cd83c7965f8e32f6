"""End to end with the spool on S3 (moto's server): signed webhooks → gateway (inbox on its disk, sealed batches
uploaded) → Prefect automation → worker runs that take their batches from S3 only → DuckDB."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from flowhook.demo import send_load
from flowhook.gateway.secrets import secret_store
from flowhook.settings import Settings
from flowhook.spool import S3Spool, Spool
from flowhook.spool.batches import flight_rows
from flowhook.stack import LocalStack
from flowhook.store import DuckDBStore
from tests import s3
from tests.conftest import e2e_stack_config

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

PREFIX = "e2e/spool"
DELIVERIES = 300


@pytest.fixture(scope="module")
def s3_stack(moto_s3: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalStack, S3Spool]]:
    """The real local stack (Prefect server, pool, deployments, worker, gateway) with FLOWHOOK_SPOOL_URL on moto."""
    client = s3.client(moto_s3)
    bucket = s3.new_bucket(client)
    config = e2e_stack_config(  # no sweeper, no ticks: every run is a trigger's
        tmp_path_factory.mktemp("s3-stack-data"),
        extra_env={
            "FLOWHOOK_SPOOL_URL": f"s3://{bucket}/{PREFIX}",
            "FLOWHOOK_S3__ENDPOINT_URL": moto_s3,
            "FLOWHOOK_DRAIN__IDLE_SECONDS": "3",  # runs end (and drop their leases) soon after the last batch
            **s3.CREDENTIALS,
            "AWS_CONFIG_FILE": "/nonexistent/aws-config",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
        },
    )
    with LocalStack(config, progress=lambda message: None) as stack:
        yield stack, S3Spool(client, bucket, PREFIX)


def _wait(condition: Callable[[], bool], what: str, timeout: float, stack: LocalStack) -> float:
    started = time.monotonic()
    while not condition():
        stack.check_alive()
        assert time.monotonic() - started < timeout, f"timed out waiting for {what}"
        time.sleep(1.0)
    return time.monotonic() - started


def test_every_acknowledged_event_is_stored_once_and_every_batch_ends_done_in_s3(
    s3_stack: tuple[LocalStack, S3Spool],
) -> None:
    stack, spool = s3_stack
    client = s3.client(stack.env()["FLOWHOOK_S3__ENDPOINT_URL"])  # moto's, which the stack's processes use
    settings = Settings(data_dir=stack.config.data_dir, sources_file=Path(stack.env()["FLOWHOOK_SOURCES_FILE"]))
    secret = secret_store(settings).secrets("demo", settings.source_configs()["demo"])[0]
    started = time.monotonic()
    result = asyncio.run(
        send_load(f"{stack.config.gateway_url}/hooks/demo", secret, count=DELIVERIES, resend_ratio=0.05, seed=29)
    )
    sent_in = time.monotonic() - started
    assert result.errors == [] and result.rejected == 0
    ids = sorted(result.acked_ids)
    assert len(ids) == result.deliveries - result.resent

    db = DuckDBStore(stack.config.data_dir / "flowhook.duckdb", lock_timeout=60)

    def all_stored() -> bool:
        if not db.path.exists():
            return False
        rows = db.query("SELECT count(*) FROM events WHERE id IN (SELECT unnest(?::VARCHAR[]))", [ids])
        return int(rows[0][0]) == len(ids)

    _wait(all_stored, "every acknowledged event in DuckDB", 180, stack)
    stored_in = time.monotonic() - started
    assert db.duplicate_ids() == 0
    assert db.query("SELECT count(*) FROM events WHERE status = 'ok' AND flow_run_id IS NOT NULL")[0][0] == len(ids)

    # The runs end (idle) and drop their leases; S3 then holds each batch and its done marker, nothing else.
    _wait(lambda: s3.keys(client, spool.bucket, f"{PREFIX}/leases/") == [], "the runs to end", 90, stack)
    keys = s3.keys(client, spool.bucket, f"{PREFIX}/")
    batches = {k.rsplit("/", 1)[1].removesuffix(".jsonl") for k in keys if k.startswith(f"{PREFIX}/batches/")}
    done = {k.rsplit("/", 1)[1] for k in keys if k.startswith(f"{PREFIX}/done/")}
    assert batches and batches == done
    assert [k for k in keys if k.startswith(f"{PREFIX}/state/")] == []  # no claim, no marker left
    assert spool.counts() == {"ready": 0, "sent": 0, "claimed": 0, "done": len(batches)}
    local = Spool(stack.config.data_dir / "spool").counts()
    assert local == {"open": 0, "ready": 0, "sent": 0, "claimed": 0, "done": 0}  # the gateway's disk: all uploaded

    in_s3: set[str] = set()  # every acknowledged event went through S3
    for batch_id in batches:
        body = client.get_object(Bucket=spool.bucket, Key=f"{PREFIX}/batches/{batch_id}.jsonl")["Body"].read()
        in_s3.update(row[0] for row in flight_rows(body))
    assert in_s3 == set(ids)
    stored_batches = {row[0] for row in db.query("SELECT DISTINCT batch_id FROM events")}
    runs = db.query("SELECT count(DISTINCT flow_run_id) FROM events")[0][0]
    assert stored_batches == batches
    print(
        f"\n{len(ids)} events ({result.deliveries} deliveries, {result.resent} resent) acknowledged in {sent_in:.1f}s "
        f"(ack p50 {statistics.median(result.ack_seconds) * 1000:.0f} ms); all stored {stored_in:.1f}s after the "
        f"first was sent; {len(batches)} batches through S3, taken by {runs} flow runs"
    )
