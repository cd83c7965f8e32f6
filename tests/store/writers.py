"""Writer processes for the DuckLake concurrency test: a module of its own, light to import in a spawned child."""

from __future__ import annotations

import random
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any

from flowhook.store import StoredEvent
from tests.store.backends import StoreSpec
from tests.store.test_duckdb_store import make_event

ROUNDS, BATCH, REPLAYED, CONTESTED = 6, 200, 10, 10


def failed(event_id: str, **overrides: Any) -> StoredEvent:
    return make_event(event_id, status="failed", error="RuntimeError: boom", attempts=3, **overrides)


def replayed_ids() -> list[str]:
    """The ids stored failed before the writers start; every writer sends them again, ok."""
    return [f"f{r}-{i}" for r in range(ROUNDS) for i in range(REPLAYED)]


def round_batch(round_: int, writer: int) -> list[StoredEvent]:
    """Every writer's batch of a round holds the same ids, in its own order: BATCH new ones, the round's
    replayed ids (ok), and CONTESTED ids that writer 0 sends failed and the others ok."""
    tag = f"w{writer}-r{round_}"
    fresh = [make_event(f"e{round_}-{i}", batch_id=tag) for i in range(BATCH)]
    replayed = [make_event(f"f{round_}-{i}", batch_id=tag) for i in range(REPLAYED)]
    contested = [
        failed(f"g{round_}-{i}", batch_id=tag) if writer == 0 else make_event(f"g{round_}-{i}", batch_id=tag)
        for i in range(CONTESTED)
    ]
    batch = fresh + replayed + contested
    random.Random(tag).shuffle(batch)
    return batch


def write_rounds(spec: StoreSpec, writer: int, start: Barrier, results: Queue[tuple[int, int | str]]) -> None:
    """One writer process: attach, wait for the others, write every round in its own order; put how many ids
    its writes said were new (or its error)."""
    try:
        store = spec.open(lock_timeout=60)
        store.count_events()  # attached (about a second) before the start line, so the writes overlap
        start.wait(60)
        rounds = list(range(ROUNDS))
        random.Random(writer).shuffle(rounds)
        results.put((writer, sum(store.write_events(round_batch(r, writer)) for r in rounds)))
    except BaseException as exc:
        results.put((writer, f"{type(exc).__name__}: {exc}"))
        raise
