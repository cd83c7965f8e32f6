"""Prefect down during a burst: the gateway keeps accepting, and forwards every batch once the
events API is back. The events API here is a real HTTP server on a loopback port that refuses
connections (nothing listening) until it is started mid-test."""

from __future__ import annotations

import time
from pathlib import Path

import orjson

from flowhook.gateway import BATCH_READY, PrefectEventSink
from flowhook.gateway.schemes import generate_secret, sign
from flowhook.settings import Settings
from flowhook.sources.webhook import SignatureConfig, SourceConfig
from flowhook.spool import Spool, State
from flowhook.spool.config import BatchPolicy
from flowhook.stack import free_port
from flowhook.worker.config import DrainPolicy
from tests.servers import events_api, serve

STANDARD = SignatureConfig()
SECRET = generate_secret(STANDARD)


def test_a_burst_during_an_outage_is_forwarded_when_prefect_returns(tmp_path: Path) -> None:
    port = free_port()
    settings = Settings(
        data_dir=tmp_path,
        webhook_secret=SECRET,
        sources={"shop": SourceConfig()},
        batch=BatchPolicy(max_events=50, max_seconds=0.1, hold_seconds=0),
        drain=DrainPolicy(idle_seconds=0),  # no run here takes the next batches: each needs its own event
    )
    sink = PrefectEventSink(f"http://127.0.0.1:{port}/api")
    ids: set[str] = set()
    with serve(settings, sink) as client:
        for n in range(300):
            body = orjson.dumps({"type": "user_request", "data": {"user_id": f"u{n}", "action": "search"}})
            headers = {"content-type": "application/json", **sign(STANDARD, body, SECRET, msg_id=f"m{n}")}
            response = client.post("/hooks/shop", content=body, headers=headers)
            assert response.status_code == 202, response.text
            ids.update(response.json()["ids"])
        time.sleep(0.5)
        health = client.get("/health").json()
        assert health["forward_failures"] > 0 and health["forwarded"] == 0  # Prefect is down
        spool = Spool(settings.spool_dir)
        waiting = [batch_id for batch_id, _ in spool.entries(State.READY)]
        assert waiting and not list(spool.entries(State.SENT))

        with events_api(port) as received:
            deadline = time.monotonic() + 15
            while len(list(spool.entries(State.SENT))) < len(waiting) and time.monotonic() < deadline:
                time.sleep(0.1)
            announced = {event["payload"]["batch_id"] for event in received if event["event"] == BATCH_READY}

    assert announced == set(waiting)
    assert sum(event["payload"]["count"] for event in received) == 300
    assert not list(spool.entries(State.READY))
    stored = [
        e.id for state in (State.SENT,) for b, _ in spool.entries(state) for e in spool.read(spool.path(state, b))
    ]
    assert sorted(stored) == sorted(ids)
