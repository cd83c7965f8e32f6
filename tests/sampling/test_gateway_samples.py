"""The gateway's samples, end to end: a real gateway on a socket, its real spool, the worker's own step code
writing a real DuckDB file, and the report: Little's law from the samples holds on what really happened, and
every delivery's outcome is counted."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from flowhook.events import load_catalog
from flowhook.gateway.schemes import generate_secret, sign
from flowhook.metrics import Window
from flowhook.names import ALL_TYPES
from flowhook.reporting import window_report
from flowhook.sampling.log import read_records, sample_files
from flowhook.settings import Settings
from flowhook.sources.webhook import SignatureConfig
from flowhook.spool import Spool
from flowhook.store import DuckDBStore
from flowhook.worker.steps import process_step
from tests.servers import serve

STANDARD = SignatureConfig()
TYPES = ("user_request", "data_update")


def _worker(settings: Settings, stop: threading.Event, every: float) -> None:
    """What an awake worker run does, without Prefect: every `every` s, claim what waits, handle, store, complete."""
    spool, store, catalog = Spool(settings.spool_dir), DuckDBStore(settings.database), load_catalog()
    while not stop.wait(every):
        for event_type in TYPES:
            batches = spool.pending(event_type, max_events=10_000)
            if batches:
                process_step(
                    batches,
                    owner="test-run",
                    spool=spool,
                    store_to=store,
                    catalog=catalog,
                    policy_for_type=settings.retry_policy,
                )


def _wait_for_a_watched_second(settings: Settings) -> None:
    """Until the sampler has watched one whole second: only whole watched seconds are compared, so deliveries
    sent within the gateway's first (partly watched) second would fall outside the check by chance."""
    deadline = time.monotonic() + 10
    while not any(
        record.get("kind") == "backlog" and record.get("event_type") == ALL_TYPES and record["covered_seconds"] >= 0.999
        for _, path in sample_files(settings.samples_dir)
        for record in read_records(path)
    ):
        assert time.monotonic() < deadline, "the sampler watched no whole second"
        time.sleep(0.1)


def _body(i: int) -> bytes:
    if i % 3:
        return orjson.dumps({"type": "user_request", "data": {"user_id": f"u{i}", "action": "search"}})
    return orjson.dumps({"type": "data_update", "data": {"dataset": "d", "uri": f"s3://b/{i}"}})


def test_little_holds_on_a_real_gateway_and_every_outcome_is_counted(tmp_path: Path) -> None:
    secret = generate_secret(STANDARD)
    settings = Settings(data_dir=tmp_path, webhook_secret=secret)
    stop = threading.Event()
    # Slow steps (every 0.8 s) keep events in the system long enough that sampling every 0.1 s resolves them.
    worker = threading.Thread(target=_worker, args=(settings, stop, 0.8), daemon=True)
    started = datetime.now(UTC)
    with serve(settings) as client:
        _wait_for_a_watched_second(settings)
        worker.start()
        for i in range(240):  # 6 s at 40 deliveries/s
            body = _body(i)
            headers = {**sign(STANDARD, body, secret, msg_id=f"m{i}"), "content-type": "application/json"}
            assert client.post("/hooks/demo", content=body, headers=headers).status_code == 202
            if i % 40 == 0:  # refusals: a forged signature and an unknown source
                assert (
                    client.post("/hooks/demo", content=body, headers={**headers, "webhook-id": "x"}).status_code == 401
                )
                assert client.post("/hooks/nowhere", content=body, headers=headers).status_code == 404
                bad = orjson.dumps({"type": "user_request", "data": {"user_id": ""}})  # authentic, but not valid
                bad_headers = {**sign(STANDARD, bad, secret, msg_id=f"bad{i}"), "content-type": "application/json"}
                assert client.post("/hooks/demo", content=bad, headers=bad_headers).status_code == 422
            time.sleep(0.025)
        deadline = time.monotonic() + 30
        while DuckDBStore(settings.database).count_events() < 240:
            assert time.monotonic() < deadline, "not everything was stored"
            time.sleep(0.2)
        time.sleep(1.5)  # the sampler sees the empty spool and writes its last seconds
    stop.set()
    worker.join(10)
    assert list(sample_files(settings.samples_dir))
    ended = datetime.now(UTC)
    report = window_report(
        DuckDBStore(settings.database),
        Spool(settings.spool_dir),
        Window(started - timedelta(seconds=1), ended),
        target_p99_seconds=30.0,
        samples_dir=settings.samples_dir,
    )
    assert report.sampled
    overall = report.rows[-1]
    assert overall.totals.arrivals == 240
    assert overall.little is not None
    assert overall.little.verdict == "holds", overall.little
    assert overall.little.watched_share > 0.95
    assert overall.little.gap < 0.05
    # Each type's events and each refusal, as the gateway answered them.
    counts = {(c.source, c.event_type, c.status, c.outcome): (c.deliveries, c.events) for c in report.ingress}
    assert counts[("demo", "user_request", 202, "accepted")] == (160, 160)
    assert counts[("demo", "data_update", 202, "accepted")] == (80, 80)
    assert counts[("demo", "", 401, "refused")] == (6, 0)
    assert counts[("", "", 404, "refused")] == (6, 0)
    assert counts[("demo", "", 422, "quarantined")] == (6, 0)
    assert sum(d for d, _ in counts.values()) == 240 + 3 * 6


@pytest.mark.parametrize("period", ["0"])
def test_sampling_can_be_turned_off(tmp_path: Path, period: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWHOOK_SAMPLING__PERIOD_SECONDS", period)
    settings = Settings(data_dir=tmp_path, webhook_secret=generate_secret(STANDARD))
    with serve(settings) as client:
        assert client.get("/health").status_code == 200
        time.sleep(1.2)
    backlog = [path for _, path in sample_files(settings.samples_dir) if b'"backlog"' in path.read_bytes()]
    assert backlog == []
