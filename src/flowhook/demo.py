"""The demo load: realistic signed webhook deliveries of the built-in event types, sent like a
sender would (concurrently, retrying on 5xx with the same delivery id, sometimes twice)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

from flowhook.events import derive_event_id
from flowhook.events.builtin import DATA_UPDATE, SCHEDULED_TICK, USER_REQUEST
from flowhook.gateway.schemes import sign
from flowhook.gateway.sources import SignatureConfig
from flowhook.sources.sqs.config import SQS_BATCH

_ACTIONS = ["search", "view", "add_to_cart", "checkout", "login", "cancel", "payment"]
_DATASETS = ["orders", "customers", "inventory", "clickstream"]


def demo_event(rng: random.Random, now: datetime) -> dict[str, Any]:
    """One event as a sender writes it: 60 % user requests, 30 % data updates, 10 % schedule ticks."""
    roll = rng.random()
    occurred = now - timedelta(milliseconds=rng.randint(0, 200))
    if roll < 0.6:
        action = rng.choice(_ACTIONS)
        data: dict[str, Any] = {"user_id": f"u{rng.randint(1, 500)}", "action": action, "path": f"/{action}"}
        if action in ("checkout", "payment"):
            data["amount_cents"] = rng.randint(100, 50_000)
        event_type = USER_REQUEST
    elif roll < 0.9:
        dataset = rng.choice(_DATASETS)
        data = {
            "dataset": dataset,
            "uri": f"s3://demo-bucket/{dataset}/{uuid.UUID(int=rng.getrandbits(128))}.parquet",
            "rows": rng.randint(1, 10_000),
            "operation": rng.choice(["insert", "insert", "update", "delete"]),
        }
        event_type = DATA_UPDATE
    else:
        data = {"schedule": rng.choice(["hourly-rollup", "nightly-export"]), "tick": now.isoformat()}
        event_type = SCHEDULED_TICK
    return {"type": event_type, "timestamp": occurred.isoformat(), "data": data}


@dataclass
class SendResult:
    """What the load generator saw: acknowledged event ids and how the gateway answered."""

    acked_ids: set[str] = field(default_factory=set)
    deliveries: int = 0
    resent: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)
    ack_seconds: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery as a sender makes it; a resend repeats the id and body."""

    msg_id: str
    body: bytes
    resend: bool = False


def plan_deliveries(count: int, *, resend_ratio: float = 0.02, seed: int | None = None) -> list[Delivery]:
    """`count` single-event deliveries; a `resend_ratio` share is delivered twice, as a retrying sender does.

    Without a `seed` every run makes new delivery ids, so a second demo on the same data is new data.
    """
    rng = random.Random(seed)
    deliveries = []
    for _ in range(count):
        body = orjson.dumps(demo_event(rng, datetime.now(UTC)))
        first = Delivery(msg_id=f"msg_{uuid.UUID(int=rng.getrandbits(128)).hex}", body=body)
        deliveries.append(first)
        if rng.random() < resend_ratio:
            deliveries.append(Delivery(msg_id=first.msg_id, body=body, resend=True))
    return deliveries


async def send_deliveries(
    url: str,
    secret: str,
    deliveries: Sequence[Delivery],
    *,
    concurrency: int = 16,
    signature: SignatureConfig | None = None,
    on_sent: Callable[[], None] | None = None,
) -> SendResult:
    """Send every delivery, signed with the source's scheme (Standard Webhooks by default)."""
    scheme = signature or SignatureConfig()
    result = SendResult()
    pending = iter(deliveries)

    async def sender(client: httpx.AsyncClient) -> None:
        for delivery in pending:
            await _deliver(client, url, scheme, secret, delivery, result)
            result.deliveries += 1
            result.resent += delivery.resend
            if on_sent:
                on_sent()

    async with httpx.AsyncClient(timeout=30.0) as client:
        await asyncio.gather(*(sender(client) for _ in range(concurrency)))
    return result


async def send_load(
    url: str, secret: str, *, count: int, resend_ratio: float = 0.02, seed: int | None = None
) -> SendResult:
    """Plan and send a demo load in one call."""
    return await send_deliveries(url, secret, plan_deliveries(count, resend_ratio=resend_ratio, seed=seed))


async def _deliver(
    client: httpx.AsyncClient,
    url: str,
    scheme: SignatureConfig,
    secret: str,
    delivery: Delivery,
    result: SendResult,
) -> None:
    loop = asyncio.get_running_loop()
    msg_id, body = delivery.msg_id, delivery.body
    for attempt in range(5):
        headers = {"content-type": "application/json", **sign(scheme, body, secret, msg_id=msg_id)}
        started = loop.time()
        try:
            response = await client.post(url, content=body, headers=headers)
        except httpx.TransportError as exc:
            error = f"{type(exc).__name__}"
        else:
            if response.status_code == 202:
                result.ack_seconds.append(loop.time() - started)
                result.acked_ids.update(response.json()["ids"])
                return
            if response.status_code < 500:
                result.rejected += 1
                result.errors.append(f"{response.status_code} {response.text[:200]}")
                return
            error = f"HTTP {response.status_code}"
        await asyncio.sleep(0.2 * 2**attempt)
    result.errors.append(f"gave up on {msg_id}: {error}")


def send_sqs_messages(client: Any, queue_url: str, count: int, *, seed: int | None = None) -> list[str]:
    """Put `count` flowhook-format events on an SQS queue; returns the event ids they will be stored as."""
    rng = random.Random(seed)
    ids = []
    for start in range(0, count, SQS_BATCH):
        entries = [
            {"Id": str(n), "MessageBody": orjson.dumps(demo_event(rng, datetime.now(UTC))).decode()}
            for n in range(min(SQS_BATCH, count - start))
        ]
        sent = client.send_message_batch(QueueUrl=queue_url, Entries=entries)
        ids += [derive_event_id("sqs", entry["MessageId"]) for entry in sent.get("Successful", [])]
    return ids


def drop_files(folder: Path, count: int) -> list[str]:
    """Write `count` small CSV files into the watched folder, settled; returns their event ids."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = []
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    for n in range(count):
        path = folder / f"orders-{stamp}-{n}.csv"
        body = f"order_id,total\n{uuid.uuid4().hex},{n * 10 + 5}\n".encode()
        path.write_bytes(body)
        settled = time.time() - 5
        os.utime(path, (settled, settled))
        uri = path.resolve().as_uri()
        ids.append(derive_event_id("files", f"{uri}#sha256:{hashlib.sha256(body).hexdigest()}"))
    return ids
