"""Nothing lost, nothing doubled: a burst through the real local stack while every part fails in turn.

One scenario (the module's `scenario` fixture) sends over 10,000 events in signed deliveries at a
steady rate, retried by the sender until acknowledged, and meanwhile:
SIGKILLs the gateway; SIGKILLs the worker with its flow runs; stops the Prefect server; holds the
DuckDB file's lock past the writers' timeout; fills the disk under the DuckDB file; pauses every
automation (the trigger path dropping its actions, left to the sweeper); then redelivers acknowledged
webhooks and SQS messages. The tests then check the promise: every acknowledged event is in DuckDB
exactly once. The bounded run is what CI runs; FLOWHOOK_FAULTS_SOAK=1 runs 5x the events with a
60 s Prefect outage and a lock held past every retry.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
from prefect.settings import PREFECT_API_URL, temporary_settings

from flowhook.demo import demo_event
from flowhook.events import derive_event_id
from flowhook.gateway.secrets import secret_store
from flowhook.settings import Settings
from flowhook.spool import Spool, State, event_type_of
from flowhook.stack import LocalStack
from flowhook.store import DuckDBStore
from tests.conftest import e2e_stack_config
from tests.faults.faults import (
    Fault,
    FaultLog,
    Sender,
    Sweeps,
    disk_full,
    kill_gateway,
    kill_worker,
    plan,
    prefect_outage,
    set_automations,
    store_locked,
    summary_table,
)
from tests.figures import report

ROOT = Path(__file__).resolve().parents[2]
SOAK = os.environ.get("FLOWHOOK_FAULTS_SOAK") == "1"
EVENTS_PER_DELIVERY = 10
DELIVERIES = 6_000 if SOAK else 1_100  # ≥ 10,000 events either way
RATE = 20.0 if SOAK else 4.0  # deliveries per second: the burst outlasts the faults
OUTAGE = 60.0 if SOAK else 20.0
LOCK_HELD = 50.0 if SOAK else 12.0  # soak: past every retry of the store task (5 s timeout, 2+5+15 s apart)
SQS_MESSAGES = 100
FLAKY_EVERY = 50  # one delivery in 50 carries `flaky` events, which fail until the flag file goes

# The scenario runs once, in the first test's setup: about 5 minutes bounded, 20 soaking.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(3600 if SOAK else 1500),
]


@pytest.fixture(scope="module")
def duckdb_mount(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A small tmpfs for the DuckDB file, so the suite can fill its disk."""
    mount = tmp_path_factory.mktemp("duckdb-tmpfs")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(mount)], capture_output=True)
    assert done.returncode == 0, f"mounting a tmpfs needs root: {done.stderr.decode().strip()}"
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, duckdb_mount: Path) -> Iterator[LocalStack]:
    # Outside pytest's rotating temp folders, so the parts' logs survive a failed run to be read.
    data_dir = Path(tempfile.mkdtemp(prefix="flowhook-faults-"))
    (data_dir / "flaky.flag").touch()
    config = e2e_stack_config(  # no scheduler: the suite runs the sweeper itself
        data_dir,
        local_sqs=True,
        start_sources=True,
        extra_env={
            "FLOWHOOK_DUCKDB_PATH": str(duckdb_mount / "flowhook.duckdb"),
            "FLOWHOOK_SWEEP_AFTER_SECONDS": "5",
            # The claim timeout stays at 600 s: a killed run's batches come back through its stale lease
            # (FLOWHOOK_DEAD_RUN_AFTER_SECONDS, 30 s) or not in time for the suite.
            "FLOWHOOK_LOCK_TIMEOUT_SECONDS": "5",
            # A user-defined type whose handler fails while the flag file exists: the dead letters.
            "FLOWHOOK_EVENT_MODULES": '["tests.fixtures.flaky_events"]',
            "FLOWHOOK_FLAKY_FLAG": str(data_dir / "flaky.flag"),
        },
    )
    with (
        LocalStack(config, progress=lambda message: None) as running,
        temporary_settings(updates={PREFECT_API_URL: config.api_url}),
    ):
        running.deploy(ROOT / "tests" / "fixtures" / "flaky-prefect.yaml")
        yield running


@dataclass
class Outcome:
    acked: dict[str, float]
    sqs_ids: list[str]
    faults: list[Fault]
    sender: Sender
    store: DuckDBStore
    swept_runs: int
    sweeps: int
    flaky: list[str]
    letters: list[tuple[str, int, str | None]]
    replay_output: str
    replay_seconds: float
    recovered_after: float
    rows: dict[str, int] = field(default_factory=dict)


def _settings(stack: LocalStack) -> Settings:
    return Settings(data_dir=stack.config.data_dir, sources_file=Path(stack.env()["FLOWHOOK_SOURCES_FILE"]))


def _stored(store: DuckDBStore, ids: list[str]) -> int:
    rows = store.query("SELECT count(DISTINCT id) FROM events WHERE id IN (SELECT unnest(?::VARCHAR[]))", [ids])
    return int(rows[0][0])


def _status_count(store: DuckDBStore, ids: list[str], status: str) -> int:
    rows = store.query(
        "SELECT count(*) FROM events WHERE status = ? AND id IN (SELECT unnest(?::VARCHAR[]))", [status, ids]
    )
    return int(rows[0][0])


def _count_runs(tag: str) -> int:
    async def count() -> int:
        async with get_client() as client:
            return await client.count_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[tag])))

    return asyncio.run(count())


def _wait_idle(stack: LocalStack, timeout: float = 60.0) -> None:
    """Until no worker run holds a fresh lease: new batches then need a trigger (or the sweeper)."""
    spool = Spool(stack.config.data_dir / "spool")
    deadline = time.monotonic() + timeout
    while any(spool.has_lease(t, fresh_within=5) for t in ("user_request", "data_update", "scheduled_tick")):
        if time.monotonic() > deadline:
            return
        time.sleep(0.5)


def _wait_settled(stack: LocalStack, event_type: str, timeout: float) -> None:
    """Until no batch of the type is in flight and no run of it holds a fresh lease. A redelivered flaky event is
    handled again: its row is back at one handler call while its retries sleep, so read dead letters after that."""
    spool = Spool(stack.config.data_dir / "spool")
    in_flight = [state for state in State if state is not State.DONE]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batches = [b for state in in_flight for b, _ in spool.entries(state) if event_type_of(b) == event_type]
        if not batches and not spool.has_lease(event_type, fresh_within=5):
            return
        time.sleep(1)


def _send_sqs(stack: LocalStack, count: int) -> list[str]:
    """SQS messages carrying their event id as the `id` attribute, each sent twice (an at-least-once producer)."""
    assert stack.sqs_client is not None
    queue = stack.sqs_env["FLOWHOOK_SQS__QUEUE_URL"]
    ids = []
    rng = random.Random(5)
    for n in range(count):
        body = orjson.dumps(demo_event(rng, datetime.now(UTC))).decode()
        attributes = {"id": {"DataType": "String", "StringValue": f"fault-sqs-{n}"}}
        for _ in range(2):
            stack.sqs_client.send_message(QueueUrl=queue, MessageBody=body, MessageAttributes=attributes)
        ids.append(derive_event_id("sqs", f"fault-sqs-{n}"))
    return ids


@pytest.fixture(scope="module")
def scenario(stack: LocalStack) -> Outcome:
    settings = _settings(stack)
    secret = secret_store(settings).secrets("demo", settings.source_configs()["demo"])[0]
    store = DuckDBStore(Path(stack.env()["FLOWHOOK_DUCKDB_PATH"]), lock_timeout=120)
    sender = Sender(
        f"{stack.config.gateway_url}/hooks/demo",
        secret,
        plan(DELIVERIES, EVENTS_PER_DELIVERY, seed=3, flaky_every=FLAKY_EVERY),
        RATE,
    )
    log = FaultLog()
    # The sweeper every 15 s, as its schedule would run it (every 60 s in prefect.yaml; shorter here
    # so the suite stays bounded): it releases what dead runs left claimed and launches what no trigger took.
    with Sweeps(stack.config.api_url, every=15.0) as sweeps:
        sender.start()
        time.sleep(5)
        with log.fault("gateway SIGKILL") as fault:
            fault.detail = kill_gateway(stack, down=2.0)
        time.sleep(8)
        with log.fault("worker SIGKILL") as fault:
            fault.detail = kill_worker(stack, down=2.0)
        time.sleep(8)
        with log.fault("Prefect down") as fault:
            fault.detail = prefect_outage(stack, OUTAGE)
        time.sleep(8)
        with log.fault("DuckDB locked") as fault, store_locked(store.lock_path):
            time.sleep(LOCK_HELD)
            fault.detail = f"the file's lock held {LOCK_HELD:g} s by another process (writers time out after 5 s)"
        time.sleep(8)
        with log.fault("disk full") as fault, disk_full(store.path.parent) as filled:
            time.sleep(15)
            fault.detail = f"15 s with {filled} on the DuckDB file's tmpfs"
        _wait_idle(stack)
        with log.fault("triggers dropped") as fault:
            paused = set_automations(enabled=False)
            time.sleep(20)
            set_automations(enabled=True)
            fault.detail = f"{paused} automations paused for 20 s: only the sweeper launches runs"
        sender.join(timeout=DELIVERIES / RATE + 600)
        with log.fault("redelivery") as fault:
            again = sender.acked_deliveries[: len(sender.acked_deliveries) // 5]
            sender.resend(again)
            stack.start_sources()  # their 290 s runs ended meanwhile; the schedule would start the next ones
            sqs_ids = _send_sqs(stack, SQS_MESSAGES)
            fault.detail = f"{len(again)} acknowledged deliveries sent again; {SQS_MESSAGES} SQS messages sent twice"

        ids = sorted(sender.acked) + sqs_ids
        deadline = time.monotonic() + (900 if SOAK else 420)
        while _stored(store, ids) < len(ids) and time.monotonic() < deadline:
            stack.check_alive()
            time.sleep(2)
        all_stored = time.time() - log.faults[-1].ended
        _wait_settled(stack, "flaky", timeout=180)

        # The flaky events failed every call while their dependency was down: dead letters. Fix it, replay.
        flaky = sorted(  # a set: the redelivered flaky deliveries are in acked_deliveries twice
            {i for d in sender.acked_deliveries if b'"flaky"' in d.body for i in sender.delivery_ids[d.msg_id]}
        )
        letters = store.dead_letters(event_type="flaky")
        flag = Path(stack.env()["FLOWHOOK_FLAKY_FLAG"])
        flag.unlink()
        replay = subprocess.run(
            [sys.executable, "-m", "flowhook", "replay", "--type", "flaky"],
            env=stack.env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,  # seconds when the machine is quiet; its store lock may wait up to 120 s for the runs
        )
        replayed_at = time.monotonic()
        deadline = replayed_at + (600 if SOAK else 300)  # its own bound: not what the wait above left over
        while _status_count(store, flaky, "ok") < len(flaky) and time.monotonic() < deadline:
            time.sleep(2)
        replay_seconds = time.monotonic() - replayed_at
    outcome = Outcome(
        acked=sender.acked,
        sqs_ids=sqs_ids,
        faults=log.faults,
        sender=sender,
        store=store,
        swept_runs=_count_runs("swept"),
        sweeps=sweeps.started,
        flaky=flaky,
        letters=[(letter.event.id, letter.attempts, letter.error) for letter in letters],
        replay_output=replay.stdout + replay.stderr,
        replay_seconds=replay_seconds,
        recovered_after=all_stored,
    )
    _report(outcome)
    return outcome


def _recovery(outcome: Outcome, fault: Fault) -> float | None:
    """Seconds from a fault's end until every event acknowledged while it lasted was stored (the flaky ones,
    stored again by the replay at the end, left out)."""
    replayed = set(outcome.flaky)
    ids = [i for i, at in outcome.acked.items() if fault.started <= at <= fault.ended + 1.0 and i not in replayed]
    if not ids:
        return None
    rows = outcome.store.query("SELECT max(epoch(stored)) FROM events WHERE id IN (SELECT unnest(?::VARCHAR[]))", [ids])
    return None if rows[0][0] is None else max(0.0, float(rows[0][0]) - fault.ended)


def _report(outcome: Outcome) -> None:
    ids = list(outcome.acked) + outcome.sqs_ids
    stored = _stored(outcome.store, ids)
    rows: list[tuple[str, Any]] = [
        ("faults injected", len(outcome.faults)),
        (
            "events sent",
            f"{len(outcome.sender.deliveries) * EVENTS_PER_DELIVERY:,} by webhook + {2 * SQS_MESSAGES} SQS messages",
        ),
        (
            "delivery attempts",
            f"{outcome.sender.attempts:,} ({outcome.sender.failures:,} refused or unanswered, retried)",
        ),
        ("acknowledged", f"{len(ids):,} events"),
        ("stored", f"{stored:,}"),
        ("missing", f"{len(ids) - stored:,}"),
        ("duplicates", outcome.store.duplicate_ids()),
        ("dead-lettered", f"{len(outcome.letters)} flaky events, each after {_attempts(outcome)} handler calls"),
        (
            "recovered",
            f"{_status_count(outcome.store, outcome.flaky, 'ok')} by `flowhook replay --type flaky`, "
            f"stored ok {outcome.replay_seconds:.1f} s after it",
        ),
        ("swept runs", f"{outcome.swept_runs} batches launched by {outcome.sweeps} sweeper runs"),
        ("all stored", f"{outcome.recovered_after:.1f} s after the last fault ended"),
    ]
    text = summary_table(rows, outcome.faults, lambda fault: _recovery(outcome, fault))
    report(text)
    print(text)


def _attempts(outcome: Outcome) -> str:
    return " or ".join(str(n) for n in sorted({attempts for _, attempts, _ in outcome.letters})) or "—"


def test_every_acknowledged_event_is_stored(scenario: Outcome) -> None:
    assert scenario.sender.errors == []
    ids = sorted(scenario.acked) + scenario.sqs_ids
    assert len(scenario.acked) >= 10_000
    assert _stored(scenario.store, ids) == len(ids)


def test_nothing_is_stored_twice(scenario: Outcome) -> None:
    assert scenario.store.duplicate_ids() == 0
    ids = sorted(scenario.acked) + scenario.sqs_ids
    [(rows,)] = scenario.store.query("SELECT count(*) FROM events WHERE id IN (SELECT unnest(?::VARCHAR[]))", [ids])
    assert rows == len(ids)


def test_the_sweeper_launched_what_dead_runs_and_paused_triggers_left(scenario: Outcome) -> None:
    assert scenario.swept_runs > 0


def test_failed_events_wait_in_the_dead_letters_after_their_retries(scenario: Outcome) -> None:
    assert len(scenario.flaky) >= 100
    assert sorted(event_id for event_id, _, _ in scenario.letters) == scenario.flaky
    for _, attempts, error in scenario.letters:
        assert attempts == 3  # the default retry policy: 3 handler calls
        assert error is not None and "dependency of flaky event" in error


def test_replay_reprocesses_the_dead_letters_once_fixed(scenario: Outcome) -> None:
    assert "flaky" in scenario.replay_output, scenario.replay_output
    assert _status_count(scenario.store, scenario.flaky, "ok") == len(scenario.flaky)
    assert scenario.store.dead_letters(event_type="flaky") == []
    assert scenario.store.duplicate_ids() == 0
