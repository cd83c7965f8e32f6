"""Announcing batches to a Prefect server protected by an auth string: which client should the forwarder hold?

Starts a Prefect server (SQLite, temporary folder, 127.0.0.1) with `PREFECT_SERVER_API_AUTH_STRING`, then times:
constructing Prefect's client (`get_client`, what a per-call client would pay); the forwarder's long-lived
httpx client with Prefect's headers, `POST /api/events` of one batch event and of 10 per request, each awaited
until the server answers 2xx; and Prefect's websocket `PrefectEventsClient.emit` of one event, which returns once
the event is written to the socket (the server acknowledges nothing). Finally it reads back how many of the
events sent each way the server holds.

    uv run python bench/prefect_announce.py            # 300 announcements each way
    uv run python bench/prefect_announce.py --count 50
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from flowhook.stack import LocalStack, StackConfig, free_port  # noqa: E402

AUTH = "bench:announce"


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms"


def _event(run: str, n: int) -> dict[str, object]:
    return {
        "id": str(uuid.uuid4()),
        "occurred": datetime.now(UTC).isoformat(),
        "event": f"bench.{run}",
        "resource": {"prefect.resource.id": f"bench.{run}.{n}"},
        "related": [],
        "payload": {"n": n},
    }


async def _measure(api_url: str, count: int) -> None:
    from prefect.client.orchestration import get_client
    from prefect.events import Event, Resource
    from prefect.events.clients import PrefectEventsClient

    from flowhook.prefect_api import async_client

    builds = []
    for _ in range(20):
        start = time.perf_counter()
        client = get_client()
        builds.append(time.perf_counter() - start)
        await client.__aenter__()
        await client.__aexit__(None, None, None)
    print(f"get_client() construction: {_ms(builds)}")

    async with async_client(api_url) as http:
        await http.post("events", json=[_event("warmup", 0)])
        single, grouped = [], []
        for n in range(count):
            start = time.perf_counter()
            (await http.post("events", json=[_event("http", n)])).raise_for_status()
            single.append(time.perf_counter() - start)
        for n in range(0, count, 10):
            start = time.perf_counter()
            (await http.post("events", json=[_event("http10", n + i) for i in range(10)])).raise_for_status()
            grouped.append(time.perf_counter() - start)
    print(f"httpx POST /events, 1 event, answered: {_ms(single)}")
    print(f"httpx POST /events, 10 events, answered: {_ms(grouped)}")

    async with PrefectEventsClient(api_url=api_url) as ws:
        emits = []
        for n in range(count):
            event = Event(event="bench.ws", resource=Resource({"prefect.resource.id": f"bench.ws.{n}"}))
            start = time.perf_counter()
            await ws.emit(event)
            emits.append(time.perf_counter() - start)
    print(f"PrefectEventsClient.emit, 1 event, written (no acknowledgement): {_ms(emits)}")

    await asyncio.sleep(3.0)  # the server persists events in batches
    async with async_client(api_url) as http:
        for name, sent in (("bench.http", count), ("bench.ws", count)):
            body = {"filter": {"event": {"name": [name]}, "occurred": {"since": "2000-01-01T00:00:00Z"}}, "limit": 1}
            held = (await http.post("events/filter", json=body)).json()["total"]
            print(f"server holds {held} of {sent} {name} events")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = StackConfig(
            root=ROOT,
            data_dir=Path(tmp),
            prefect_port=free_port(),
            extra_env={"PREFECT_SERVER_API_AUTH_STRING": AUTH},
        )
        stack = LocalStack(config, progress=lambda message: None)
        stack.logs.mkdir(parents=True, exist_ok=True)
        os.environ["PREFECT_API_URL"] = config.api_url
        os.environ["PREFECT_API_AUTH_STRING"] = AUTH
        try:
            stack.start_server()
            asyncio.run(_measure(config.api_url, args.count))
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
