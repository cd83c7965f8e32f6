"""One step of a worker run over the batches it takes: claim, handle, store, retry the failed, complete.

claim (exactly one run wins a batch) → handle each event once (a failing event is recorded, never sinks its batch)
→ store in bulk, keyed by event id → call the failed ones again after backoff (`retry_failed`) and
store them over their failed rows, ok at last or dead letters → complete (the batch is marked
done). What a run does between steps (waiting for the next batches, its lease) is `flowhook.worker.drain`.
"""

from __future__ import annotations

import dataclasses
import gc
import heapq
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from flowhook.events import Catalog, Event
from flowhook.spool import BatchNotFound, BatchRef, BatchSpool
from flowhook.store import EventStore, StoredEvent
from flowhook.worker.config import RetryPolicy

Claimed = list[tuple[BatchRef, list[Event]]]
"""Batches a run holds, each with its events."""


def claim(spool: BatchSpool, batch: BatchRef, *, owner: str | None = None) -> list[Event] | None:
    """The batch's events, now owned by the caller (`owner`: its lease owner); None if another run has (or had) them.

    A batch whose reference names another spool (a worker configured for another bucket or prefix) is refused
    with a sentence saying so, not looked for in the wrong place.
    """
    if batch.spool is not None and batch.spool != spool.url:
        raise BatchNotFound(
            f"batch {batch.batch_id} waits in {batch.spool}, but this run's spool is {spool.url} (FLOWHOOK_SPOOL_URL)"
        )
    return spool.claim_events(batch.batch_id, owner=owner)


def claim_all(spool: BatchSpool, batches: Sequence[BatchRef], *, owner: str | None = None) -> Claimed:
    """Claim each batch; those another run has (or had) are left out."""
    claimed = []
    for batch in batches:
        events = claim(spool, batch, owner=owner)
        if events is not None:
            claimed.append((batch, events))
    return claimed


def handle_all(claimed: Claimed, *, catalog: Catalog, started: datetime, flow_run_id: str | None) -> list[StoredEvent]:
    """`handle` over every claimed batch, as one list to store in one write."""
    handled: list[StoredEvent] = []
    for batch, events in claimed:
        handled += handle(events, catalog=catalog, batch=batch, started=started, flow_run_id=flow_run_id)
    return handled


def handle(
    events: Sequence[Event],
    *,
    catalog: Catalog,
    batch: BatchRef,
    started: datetime,
    flow_run_id: str | None,
) -> list[StoredEvent]:
    """Run each event's handler once; an exception (or a result its model refuses) marks that event failed and the
    rest go on."""
    outcomes = [_call(catalog, event.type, event.data) for event in events]
    done = datetime.now(UTC)  # one time for the batch: where handling ended and storing began
    emitted, batch_id = batch.emitted, batch.batch_id
    # Positional, in `StoredEvent`'s field order: a third cheaper than by keyword, per event.
    return [
        StoredEvent(
            event.id,
            event.type,
            event.source,
            event.occurred,
            event.received,
            emitted,
            started,
            None,  # stored
            batch_id,
            flow_run_id,
            "failed" if error else "ok",
            error,
            event.data,
            result,
            1,  # attempts
            done,  # handled
        )
        for event, (result, error) in zip(events, outcomes, strict=True)
    ]


def _call(catalog: Catalog, event_type: str, data: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """(result, None) from the type's handler, or (None, the error) if it raised or returned a result that does
    not fit the type's result model (`ResultMismatch`): either way the event fails, and is retried."""
    try:
        return catalog.get(event_type).handle(data), None
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"


def retry_failed(
    events: Sequence[StoredEvent],
    *,
    catalog: Catalog,
    policy_for_type: Callable[[str], RetryPolicy],
    sleep: Callable[[float], None] = time.sleep,
) -> list[StoredEvent]:
    """Call the handlers of the failed events again, after backoff, until each succeeds or has had its type's
    `attempts` calls; returns the events called again (ok, or failed with the last error), to store over the
    failed rows. The ok events are not touched: store them first, they need not wait for these.

    Each round waits once for every event due then (all of one type are due together), so a step waits
    the sum of its type's backoffs at most, not that per event.
    """
    due: list[tuple[float, int, StoredEvent]] = []  # (when, tie-break, event) by the time since the first call
    for order, event in enumerate(events):
        if event.status == "failed" and event.attempts < policy_for_type(event.type).attempts:
            due.append((policy_for_type(event.type).backoff(event.attempts), order, event))
    heapq.heapify(due)
    retried: dict[int, StoredEvent] = {}
    waited = 0.0
    while due:
        at, order, event = heapq.heappop(due)
        if at > waited:
            sleep(at - waited)
            waited = at
        result, error = _call(catalog, event.type, event.data)
        event = dataclasses.replace(
            event,
            status="failed" if error else "ok",
            error=error,
            result=result,
            attempts=event.attempts + 1,
            handled=datetime.now(UTC),
        )
        policy = policy_for_type(event.type)
        if error and event.attempts < policy.attempts:
            heapq.heappush(due, (at + policy.backoff(event.attempts), order, event))
        else:
            retried[order] = event
    return [retried[order] for order in sorted(retried)]


def failures(handled: Sequence[StoredEvent], retried: Sequence[StoredEvent] = ()) -> int:
    """How many of a step's events failed, a retried one counted by its last outcome (`retried` from `handled`)."""
    failed = sum(1 for event in handled if event.status == "failed")
    return failed - sum(1 for event in retried if event.status == "ok")


def store(
    db: EventStore,
    events: Sequence[StoredEvent],
    *,
    now: datetime | None = None,
    then: Callable[[], None] | None = None,
) -> int:
    """Write the batch with its `stored` time (`now`, else the moment of the write itself); returns how many were new
    (a re-run stores 0). `then` runs as soon as the rows are durable (completing the batches there keeps them out
    of `claimed/` no longer than the write: what the gateway's samples see matches the timestamps)."""
    if now is not None:
        return db.write_events(events, stored=now, on_commit=then)
    return db.write_events(events, at_write=True, on_commit=then)


def complete(spool: BatchSpool, *batches: BatchRef) -> None:
    """The batches are stored: retire their files, together."""
    spool.complete(*(batch.batch_id for batch in batches))


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a step builds and stores its events, back as it was after.

    Decoding and handling allocate a dozen objects per event, all kept to the end of the step; every 700
    allocations the collector would walk them all again, for nothing (they hold no cycles): a fifth of a
    step's CPU on 1,000-event batches (bench/worker_step.py). The first write builds the Arrow columns from them,
    as many allocations again: ~2 us per event of young collections at 20,000 events/s (a gc.callbacks profile;
    within bench/worker_load.py's run-to-run noise).
    Reference counting still frees what is dropped.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclasses.dataclass(frozen=True)
class Step:
    """What one step of a worker run did: the batches it claimed (none: another run had them) and their events."""

    batches: int
    handled: list[StoredEvent]
    retried: list[StoredEvent]
    inserted: int
    failed: int


def process_step(
    batches: Sequence[BatchRef],
    *,
    owner: str | None,
    spool: BatchSpool,
    store_to: EventStore,
    catalog: Catalog,
    policy_for_type: Callable[[str], RetryPolicy],
    sleep: Callable[[float], None] = time.sleep,
) -> Step:
    """One step of a worker run: claim the batches in the name of `owner` (its flow run), handle each event, store
    them all, call the failed ones again after backoff and store those over their failed rows (ok at last, or
    dead letters), then complete the batches.

    Every part is safe to repeat (the owner claims its own batches again, the store is keyed by event id,
    completing a done batch is a no-op), so a step that failed on I/O is simply run again.
    """
    with _collector_paused():
        claimed = claim_all(spool, batches, owner=owner)

        def complete_all() -> None:
            complete(spool, *(batch for batch, _ in claimed))

        handled = handle_all(claimed, catalog=catalog, started=datetime.now(UTC), flow_run_id=owner)
        failed = failures(handled)
        inserted = store(store_to, handled, then=None if failed else complete_all)
    retried: list[StoredEvent] = []
    if failed:
        retried = retry_failed(handled, catalog=catalog, policy_for_type=policy_for_type, sleep=sleep)
        store(store_to, retried, then=complete_all)
    return Step(
        batches=len(claimed), handled=handled, retried=retried, inserted=inserted, failed=failures(handled, retried)
    )
