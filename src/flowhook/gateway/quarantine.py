"""Quarantine: authentic deliveries that could not become events, kept durably (one JSON file
each) so nothing authentic is silently dropped; `flowhook quarantine list/replay` works on them."""

from __future__ import annotations

import base64
import secrets
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, Field

from flowhook.durable import write_file
from flowhook.events import Event
from flowhook.gateway.deliveries import DeliveryError
from flowhook.gateway.intake import Delivery, Intake
from flowhook.spool import BatchRef, BatchSpool

# Kept out of the quarantine: credentials a sender or proxy may add (signatures are not secrets).
_DROPPED_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


class QuarantinedDelivery(BaseModel):
    """One authentic delivery rejected for its content, with why."""

    id: str = Field(description="Quarantine id: time-ordered, unique.")
    source: str = Field(description="The source it was delivered to.")
    received: datetime = Field(description="When the gateway received it (UTC).")
    code: str = Field(description="Machine-readable reason, e.g. `schema_violation`.")
    message: str = Field(description="The reason in a sentence.")
    errors: list[dict[str, Any]] = Field(default_factory=list, description="Field-level errors, if any.")
    delivery_id: str | None = Field(default=None, description="The sender's delivery id, if it gave one.")
    signed_at: datetime | None = Field(default=None, description="The signed timestamp, if the scheme has one.")
    headers: dict[str, str] = Field(description="Request headers (credentials removed).")
    query: dict[str, str] = Field(default_factory=dict, description="Query parameters.")
    body: str = Field(description="The raw body, base64.")

    def delivery(self) -> Delivery:
        return Delivery(
            source=self.source,
            body=base64.b64decode(self.body),
            headers=self.headers,
            query=self.query,
            delivery_id=self.delivery_id,
            signed_at=self.signed_at,
        )


def quarantined(
    delivery: Delivery, *, received: datetime, code: str, message: str, errors: list[dict[str, Any]]
) -> QuarantinedDelivery:
    """The quarantine record of a rejected delivery."""
    headers: Mapping[str, str] = delivery.headers
    return QuarantinedDelivery(
        id=f"{time.time_ns() // 1000:016d}-{secrets.token_hex(4)}",
        source=delivery.source,
        received=received,
        code=code,
        message=message,
        errors=errors,
        delivery_id=delivery.delivery_id,
        signed_at=delivery.signed_at,
        headers={k.lower(): v for k, v in headers.items() if k.lower() not in _DROPPED_HEADERS},
        query=dict(delivery.query),
        body=base64.b64encode(delivery.body).decode(),
    )


class Quarantine:
    """The quarantine folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def put(self, item: QuarantinedDelivery) -> None:
        """Keep a rejected delivery durably (fsync'd, atomically named) before the sender is answered."""
        write_file(self.root / f"{item.id}.json", orjson.dumps(item.model_dump(mode="json")))

    def items(self, *, source: str | None = None) -> list[QuarantinedDelivery]:
        """Everything quarantined, oldest first."""
        found = [self.get(path.stem) for path in sorted(self.root.glob("*.json"))]
        return [item for item in found if source is None or item.source == source]

    def get(self, item_id: str) -> QuarantinedDelivery:
        try:
            return QuarantinedDelivery.model_validate(orjson.loads((self.root / f"{item_id}.json").read_bytes()))
        except FileNotFoundError:
            raise KeyError(f"nothing in quarantine has id {item_id!r}") from None

    def remove(self, item_id: str) -> None:
        (self.root / f"{item_id}.json").unlink(missing_ok=True)


@dataclass
class ReplayResult:
    """What a replay did: batches written per quarantine id, and the ids still rejected (with why)."""

    batches: dict[str, list[BatchRef]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def refs(self) -> list[BatchRef]:
        return [ref for refs in self.batches.values() for ref in refs]


def replay(
    quarantine: Quarantine, intake: Intake, spool: BatchSpool, items: Sequence[QuarantinedDelivery]
) -> ReplayResult:
    """Map each delivery again with today's sources and catalog (its signature was checked on
    arrival); what now validates goes to the spool as sealed batches and leaves the quarantine."""
    result = ReplayResult()
    for item in items:
        if item.source not in intake.sources:
            result.failed[item.id] = f"source {item.source!r} is no longer configured"
            continue
        try:
            events = intake.events(item.delivery(), received=item.received)
        except DeliveryError as exc:
            result.failed[item.id] = f"{exc.code}: {exc}"
            continue
        by_type: dict[str, list[Event]] = defaultdict(list)
        for event in events:
            by_type[event.type].append(event)
        result.batches[item.id] = [spool.write_batch(group) for group in by_type.values()]
        quarantine.remove(item.id)
    return result
