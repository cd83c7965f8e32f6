"""End to end on the real stack: signed webhooks → gateway → Prefect automation → worker flow
per event type → DuckDB → reporting flow and artifact; and the sweeper recovering a lost trigger."""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
    DeploymentFilter,
    DeploymentFilterName,
)
from prefect.client.schemas.sorting import ArtifactSort
from prefect.deployments import run_deployment
from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventResourceFilter
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.settings import PREFECT_API_URL, temporary_settings

from flowhook.demo import send_load, send_sqs_messages
from flowhook.events import Event, derive_event_id
from flowhook.gateway.schemes import generate_secret, sign
from flowhook.gateway.secrets import secret_store
from flowhook.metrics import Window
from flowhook.reporting import REPORT_ARTIFACT_KEY, REPORT_CHART_KEY, REPORT_TABLE_KEY, window_report
from flowhook.settings import Settings
from flowhook.spool import Spool, State, new_batch_id
from flowhook.spool.batches import encode_event
from flowhook.stack import LocalStack
from flowhook.store import DuckDBStore
from flowhook.worker.watchdog import HEARTBEAT_EVENT, HEARTBEAT_RESOURCE, check_heartbeat

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

EVENT_TYPES = {"user_request", "data_update", "scheduled_tick"}


@pytest.fixture(scope="module")
def prefect_api(local_stack: LocalStack) -> Iterator[str]:
    with temporary_settings(updates={PREFECT_API_URL: local_stack.config.api_url}):
        yield local_stack.config.api_url


def _settings(stack: LocalStack) -> Settings:
    return Settings(data_dir=stack.config.data_dir, sources_file=Path(stack.env()["FLOWHOOK_SOURCES_FILE"]))


def _secret(stack: LocalStack, source: str) -> str:
    settings = _settings(stack)
    return secret_store(settings).secrets(source, settings.source_configs()[source])[0]


def _wait_no_awake_runs(stack: LocalStack, timeout: float = 60) -> None:
    spool = Spool(stack.config.data_dir / "spool")
    deadline = time.monotonic() + timeout
    while any(spool.has_lease(t, fresh_within=5) for t in EVENT_TYPES):
        assert time.monotonic() < deadline, "worker runs stayed awake"
        time.sleep(0.5)


def _store(stack: LocalStack) -> DuckDBStore:
    return DuckDBStore(stack.config.data_dir / "flowhook.duckdb", lock_timeout=60)


def _wait_stored(stack: LocalStack, ids: list[str], timeout: float) -> int:
    db = _store(stack)
    deadline = time.monotonic() + timeout
    stored = 0
    while time.monotonic() < deadline:
        stack.check_alive()
        if db.path.exists():
            stored = db.query("SELECT count(*) FROM events WHERE id IN (SELECT unnest(?::VARCHAR[]))", [ids])[0][0]
            if stored == len(ids):
                break
        time.sleep(1.0)
    return int(stored)


def test_webhooks_reach_duckdb_through_automations(local_stack: LocalStack, prefect_api: str) -> None:
    secret = _secret(local_stack, "demo")
    result = asyncio.run(
        send_load(f"{local_stack.config.gateway_url}/hooks/demo", secret, count=400, resend_ratio=0.05, seed=11)
    )
    assert result.errors == [] and result.rejected == 0
    assert result.resent > 0  # some deliveries were sent twice, with the same webhook-id
    ids = sorted(result.acked_ids)
    assert len(ids) == result.deliveries - result.resent

    assert _wait_stored(local_stack, ids, timeout=240) == len(ids)
    db = _store(local_stack)
    assert db.duplicate_ids() == 0
    assert set(db.event_counts()) == EVENT_TYPES
    # Every stored event carries the timestamps of each stage, in order.
    rows = db.query(
        "SELECT count(*) FROM events WHERE received <= emitted AND emitted <= started AND started <= stored"
        " AND status = 'ok' AND flow_run_id IS NOT NULL"
    )
    assert rows[0][0] == len(ids)

    async def runs_per_deployment() -> dict[str, int]:
        async with get_client() as client:
            counts = {}
            for name in EVENT_TYPES:
                runs = await client.read_flow_runs(
                    deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[name]))
                )
                counts[name] = len(runs)
            return counts

    # Batches carry the data: far fewer runs than events, and each type ran its own deployment.
    counts = asyncio.run(runs_per_deployment())
    assert all(n >= 1 for n in counts.values()), counts
    assert sum(counts.values()) < len(ids) / 10


def test_the_worker_and_its_flow_runs_yield_the_cores_to_the_gateway(local_stack: LocalStack, prefect_api: str) -> None:
    """The gateway runs at our niceness; the worker, and every flow run it starts, `worker_nice` above it."""
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    pids = local_stack.pids()
    assert os.getpriority(os.PRIO_PROCESS, pids["gateway"]) == ours
    worker_nice = os.getpriority(os.PRIO_PROCESS, pids["worker"])
    assert worker_nice == min(19, ours + local_stack.config.worker_nice) > ours
    url, secret = f"{local_stack.config.gateway_url}/hooks/demo", _secret(local_stack, "demo")
    result = asyncio.run(send_load(url, secret, count=50))
    niceness: dict[int, int] = {}
    deadline = time.monotonic() + 60
    while not niceness:  # a run is awake for the batches just sent: the worker's children
        assert time.monotonic() < deadline, "no flow run started"
        for pid in local_stack.flow_run_pids():
            with contextlib.suppress(ProcessLookupError):
                niceness[pid] = os.getpriority(os.PRIO_PROCESS, pid)
        time.sleep(0.1)
    assert all(value >= worker_nice for value in niceness.values()), niceness
    assert _wait_stored(local_stack, sorted(result.acked_ids), timeout=120) == len(result.acked_ids)


def test_sweeper_launches_a_batch_whose_trigger_was_lost(local_stack: LocalStack, prefect_api: str) -> None:
    # A sealed batch Prefect never heard of: as if the automation action had failed.
    spool = Spool(local_stack.config.data_dir / "spool")
    batch_id = new_batch_id("user_request")
    now = datetime.now(UTC)
    events = [
        Event(
            id=derive_event_id("lost", batch_id, i),
            type="user_request",
            source="lost",
            occurred=now,
            received=now,
            data={"user_id": f"u{i}", "action": "search"},
        )
        for i in range(25)
    ]
    path = spool.path(State.SENT, batch_id)
    path.write_bytes(b"".join(encode_event(e) for e in events))
    old = time.time() - 120
    os.utime(path, (old, old))

    run = run_deployment("sweep-batches/every-minute", timeout=180)
    assert run.state is not None and run.state.is_completed(), run.state
    ids = [e.id for e in events]
    assert _wait_stored(local_stack, ids, timeout=180) == len(ids)
    assert spool.state_of(batch_id) is State.DONE


def test_github_and_a_prefect_secret_block_source_reach_duckdb(local_stack: LocalStack, prefect_api: str) -> None:
    from prefect.blocks.system import Secret

    settings = _settings(local_stack)
    sources = settings.source_configs()
    block_secret = generate_secret(sources["vault"].signature)
    Secret(value=block_secret).save("flowhook-e2e-secret", overwrite=True)

    push = (Path(__file__).parents[1] / "fixtures" / "github_push.json").read_bytes()
    github = {"x-github-event": "push", **sign(sources["github"].signature, push, _secret(local_stack, "github"))}
    vault_body = orjson.dumps({"type": "scheduled_tick", "data": {"schedule": "vault", "tick": "2026-01-01T00:00:00Z"}})
    vault = sign(sources["vault"].signature, vault_body, block_secret, msg_id="msg_vault_1")
    ids = []
    with httpx.Client(base_url=local_stack.config.gateway_url, timeout=30) as client:
        for source, body, headers in (("github", push, github), ("vault", vault_body, vault)):
            response = client.post(
                f"/hooks/{source}", content=body, headers={"content-type": "application/json", **headers}
            )
            assert response.status_code == 202, response.text
            ids += response.json()["ids"]
    assert _wait_stored(local_stack, ids, timeout=180) == 2
    rows = dict(
        _store(local_stack).query("SELECT source, type FROM events WHERE id IN (SELECT unnest(?::VARCHAR[]))", [ids])
    )
    assert rows == {"github": "data_update", "vault": "scheduled_tick"}

    # No secret reached a log file.
    logs = "".join(path.read_text(errors="replace") for path in local_stack.logs.glob("*.log"))
    for secret in (block_secret, _secret(local_stack, "github"), _secret(local_stack, "demo")):
        assert secret not in logs


def test_schedule_and_files_sources_reach_duckdb(local_stack: LocalStack, prefect_api: str) -> None:
    incoming = local_stack.config.data_dir / "incoming"
    incoming.mkdir(exist_ok=True)
    report = incoming / "orders.csv"
    report.write_text("id,total\n1,10\n2,20\n")
    old = time.time() - 10
    os.utime(report, (old, old))

    tick = run_deployment("emit-tick/every-5-minutes", timeout=180)
    assert tick.state is not None and tick.state.is_completed(), tick.state
    watched = run_deployment("watch-files/incoming-folder", parameters={"duration_seconds": 3}, timeout=180)
    assert watched.state is not None and watched.state.is_completed(), watched.state

    db = _store(local_stack)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        rows = dict(db.query("SELECT source, count(*) FROM events WHERE source IN ('schedule', 'files') GROUP BY 1"))
        if rows.get("schedule", 0) >= 1 and rows.get("files") == 1:
            break
        time.sleep(1.0)
    # The cron schedule may add its own tick while this runs: at least ours is there.
    assert rows.get("schedule", 0) >= 1 and rows.get("files") == 1, rows
    [(uri, size)] = db.query("SELECT data->>'uri', (data->>'size_bytes')::INT FROM events WHERE source = 'files'")
    assert uri == report.resolve().as_uri() and size == report.stat().st_size


def test_a_stored_heartbeat_is_announced_to_the_proactive_watchdog_trigger(
    local_stack: LocalStack, prefect_api: str
) -> None:
    """A tick through the whole path makes the worker emit `flowhook.heartbeat.stored`, which the proactive
    trigger `prefect deploy` made from prefect.yaml expects within 660 s, running the alert deployment if not."""
    since = datetime.now(UTC)
    tick = run_deployment("emit-tick/every-5-minutes", parameters={"schedule": "watchdog-e2e"}, timeout=180)
    assert tick.state is not None and tick.state.is_completed(), tick.state

    async def announced() -> list[Any]:
        async with get_client() as client:
            page = await client.read_events(
                filter=EventFilter(
                    occurred=EventOccurredFilter(since=since),
                    event=EventNameFilter(name=[HEARTBEAT_EVENT]),
                    resource=EventResourceFilter(id=[HEARTBEAT_RESOURCE]),
                ),
                limit=10,  # the client's default, 100, is over the server's limit of 50
            )
            return list(page.events)

    deadline = time.monotonic() + 180
    while not (events := asyncio.run(announced())):
        assert time.monotonic() < deadline, f"no {HEARTBEAT_EVENT} event after the tick was stored"
        time.sleep(1.0)
    last = _store(local_stack).latest_heartbeat()
    assert last is not None and last[1] >= since
    assert check_heartbeat(last, now=datetime.now(UTC), max_age_seconds=660).status == "healthy"
    assert datetime.fromisoformat(events[0].payload["stored"]) >= since
    assert "flow-run" in {related.role for related in events[0].related}  # emitted by the worker's flow run

    async def watchdog() -> tuple[Any, Any]:
        async with get_client() as client:
            [automation] = await client.read_automations_by_name("flowhook: trigger path heartbeat missing")
            deployment = await client.read_deployment_by_name("trigger-path-alert/on-missing-heartbeat")
            return automation, deployment

    automation, deployment = asyncio.run(watchdog())
    trigger = automation.trigger
    assert automation.enabled and isinstance(trigger, EventTrigger)
    assert trigger.posture == Posture.Proactive and trigger.within == timedelta(seconds=660)
    assert trigger.expect == {HEARTBEAT_EVENT} and trigger.threshold == 1
    assert trigger.match.model_dump() == {"prefect.resource.id": HEARTBEAT_RESOURCE}
    [action] = automation.actions
    assert action.type == "run-deployment" and action.deployment_id == deployment.id


def test_sqs_messages_reach_duckdb_and_an_invalid_one_stays_in_the_queue(
    local_stack: LocalStack, prefect_api: str
) -> None:
    client = local_stack.sqs_client
    queue_url = local_stack.sqs_env["FLOWHOOK_SQS__QUEUE_URL"]
    ids = send_sqs_messages(client, queue_url, 30, seed=5)
    client.send_message(QueueUrl=queue_url, MessageBody=orjson.dumps({"type": "user_request", "data": {}}).decode())

    run = run_deployment("poll-sqs/queue", parameters={"duration_seconds": 8}, timeout=180)
    assert run.state is not None and run.state.is_completed(), run.state
    assert _wait_stored(local_stack, ids, timeout=180) == len(ids)
    assert dict(_store(local_stack).query("SELECT source, count(*) FROM events WHERE source = 'sqs' GROUP BY 1")) == {
        "sqs": 30
    }
    attributes = client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    waiting = int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])
    assert waiting == 1  # the invalid message was not deleted: it comes back, then goes to the DLQ


def test_a_burst_while_prefect_is_down_is_stored_once_it_returns(local_stack: LocalStack, prefect_api: str) -> None:
    # Worker runs still awake from earlier tests would take the burst without Prefect: let them end,
    # so the batches must go through the forwarder and the outage.
    _wait_no_awake_runs(local_stack)
    local_stack.stop_part("server")
    gateway = local_stack.config.gateway_url
    result = asyncio.run(send_load(f"{gateway}/hooks/demo", _secret(local_stack, "demo"), count=300, seed=21))
    assert result.errors == [] and len(result.acked_ids) == 300  # the gateway accepts regardless
    deadline = time.monotonic() + 30
    while httpx.get(f"{gateway}/health").json()["forward_failures"] == 0:
        assert time.monotonic() < deadline, "the forwarder never noticed the outage"
        time.sleep(0.5)

    local_stack.start_server()
    ids = sorted(result.acked_ids)
    assert _wait_stored(local_stack, ids, timeout=240) == len(ids)
    assert _store(local_stack).duplicate_ids() == 0


def test_the_report_finds_a_known_poisson_load_sent_through_the_gateway(local_stack: LocalStack) -> None:
    """Poisson deliveries at a set rate through the real gateway, Prefect and workers: the report's λ is
    the generator's within 2 %, μ its completions, Little's law holds over the whole burst, and its
    percentiles are the ones recomputed from the raw timestamps."""
    from bench.loadgen import Level, run_load

    _wait_no_awake_runs(local_stack)
    level = Level(rate=120.0, seconds=20.0, events_per_delivery=1)
    load = run_load(level, _secret(local_stack, "demo"), local_stack.config.gateway_port, id_prefix="known")
    ids = sorted(load["ids"])
    assert len(ids) == level.deliveries
    assert _wait_stored(local_stack, ids, timeout=180) == len(ids)
    db, spool = _store(local_stack), Spool(local_stack.config.data_dir / "spool")
    started, due = load["started"], load["due"]

    # λ over the inside of the load (1 s off each edge), against what the generator sent in that span.
    inner = Window(_utc(started + 1.0), _utc(started + due[-1] - 1.0), bucket_seconds=5.0)
    sent = sum(1 for t in due if 1.0 <= t < due[-1] - 1.0)
    report = window_report(db, spool, inner, target_p99_seconds=30.0)
    assert report.rows[-1].arrival_rate == pytest.approx(sent / inner.seconds, rel=0.02)
    assert report.rows[-1].arrival_rate == pytest.approx(level.rate, rel=0.1)  # a Poisson sample of the set rate

    # The whole burst, from before the first arrival until after the last store: nothing is in the system
    # at either edge, so M = N; Little's law, from the gateway's samples of its spool, must hold.
    last = db.query("SELECT max(stored) FROM events WHERE id IN (SELECT unnest(?::VARCHAR[]))", [ids])[0][0]
    whole = Window(_utc(started - 1.0), last.replace(tzinfo=UTC) + timedelta(seconds=1), bucket_seconds=5.0)
    samples = local_stack.config.data_dir / "spool" / "samples"
    time.sleep(2.5)  # the sampler writes each second once it is over
    row = window_report(db, spool, whole, target_p99_seconds=30.0, samples_dir=samples).rows[-1]
    assert (row.totals.arrivals, row.totals.completions, row.totals.in_flight) == (len(ids), len(ids), 0)
    assert row.processing_rate == pytest.approx(len(ids) / whole.seconds, rel=0.02)
    assert row.little is not None and row.little.verdict == "holds", row.little
    latencies = [
        r[0]
        for r in db.query(
            "SELECT epoch_us(stored) - epoch_us(received) FROM events WHERE id IN (SELECT unnest(?::VARCHAR[]))", [ids]
        )
    ]
    cuts = statistics.quantiles([us / 1e6 for us in latencies], n=100, method="inclusive")
    assert row.latency is not None
    for got, want in ((row.latency.p50, cuts[49]), (row.latency.p95, cuts[94]), (row.latency.p99, cuts[98])):
        assert got == pytest.approx(want, rel=0.05)
    assert row.capacity is not None and row.capacity > row.arrival_rate  # it kept up


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def test_reporting_flow_publishes_artifacts_chart_and_tables_matching_duckdb(
    local_stack: LocalStack, prefect_api: str
) -> None:
    run = run_deployment("publish-report/on-demand", parameters={"minutes": 30, "bucket_seconds": 30}, timeout=180)
    assert run.state is not None and run.state.is_completed(), run.state

    db = _store(local_stack)
    [(report_id, start, end, chart)] = db.query(
        "SELECT DISTINCT report_id, window_start, window_end, chart_path FROM latest_reports", reports=True
    )
    rows = db.query("SELECT event_type, n, m, span_seconds, arrival_rate, processing_rate FROM latest_reports")
    by_type = {row[0]: row[1:] for row in rows}
    assert EVENT_TYPES | {"all"} == set(by_type)
    # Count by hand over the report's own window.
    arrived = dict(
        db.query("SELECT type, count(*) FROM events WHERE received >= ? AND received < ? GROUP BY 1", [start, end])
    )
    stored = dict(
        db.query("SELECT type, count(*) FROM events WHERE stored >= ? AND stored < ? GROUP BY 1", [start, end])
    )
    for event_type, (n, m, span, lam, mu) in by_type.items():
        if event_type == "all":
            assert (n, m) == (sum(arrived.values()), sum(stored.values()))
        else:
            assert (n, m) == (arrived.get(event_type, 0), stored.get(event_type, 0))
        assert span == pytest.approx((end - start).total_seconds())
        assert lam == pytest.approx(n / span) and mu == pytest.approx(m / span)
    assert sum(arrived.values()) > 3000  # the webhooks, SQS messages, files and the known load of this module
    [(buckets,)] = db.query("SELECT count(*) FROM latest_report_buckets WHERE event_type = 'all'")
    assert buckets == 60
    [(stages,)] = db.query("SELECT count(DISTINCT stage) FROM latest_report_stages WHERE event_type = 'all'")
    assert stages == 6

    # The chart is saved under data/reports/ and served by the gateway for the UI.
    assert chart is not None and Path(chart).parent == local_stack.config.data_dir / "reports"
    png = httpx.get(f"{local_stack.config.gateway_url}/reports/{report_id}.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG") and png.content == Path(chart).read_bytes()

    async def latest(key: str) -> Any:
        async with get_client() as client:
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])), sort=ArtifactSort.CREATED_DESC
            )
            assert artifacts, f"no {key} artifact"
            return artifacts[0].data

    markdown = asyncio.run(latest(REPORT_ARTIFACT_KEY))
    for needle in ("λ", "seed model", "Little's law", "Capacity forecast", "p50", "user_request", f"{report_id}.png"):
        assert needle in markdown
    table = asyncio.run(latest(REPORT_TABLE_KEY))
    assert "user_request" in str(table)
    assert asyncio.run(latest(REPORT_CHART_KEY)).endswith(f"/reports/{report_id}.png")


def test_the_benchmarks_quick_mode_stores_every_acknowledged_event_once(
    local_stack: LocalStack, prefect_api: str
) -> None:
    """bench/pipeline.py's smoke run on this stack: an open-loop burst from a separate process."""
    from bench.pipeline import QUICK, measure

    results = measure(local_stack, QUICK, say=lambda message: None)
    [level] = results["levels"]
    assert level["statuses"] == {202: QUICK.levels[0].deliveries}
    assert level["acked"] == QUICK.levels[0].deliveries * QUICK.levels[0].events_per_delivery
    assert (level["stored"], level["lost"], level["duplicated"]) == (level["acked"], 0, 0)
    assert level["flow_runs"] >= 1
