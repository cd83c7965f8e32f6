"""Batch files on disk: the durable hand-off between the gateway and the worker flows.

A batch is one JSON-lines file of events of one type. It moves through state folders by atomic
renames, so at any instant exactly one folder holds it and exactly one claimer can win it:

    open/ → ready/ → sent/ → claimed/ → done/
    (gateway appends)  (sealed)  (Prefect told)  (a flow run has it)  (stored in DuckDB)

`leases/` holds one file per awake worker flow run (`<type>@<run>`, touched every second): while
a type has a fresh lease, that run takes new batches itself and the gateway need not wake another.
A claimed batch names its run in `claimed/<batch>.owner`, so once that run's lease goes stale (it
died or failed) the sweeper can give the batch back at once, not after the claim timeout.
`open/` holds one folder per gateway process (`open/<slot>/`, see `flowhook.spool.slots`); a flat file
directly in `open/` was left by a gateway from before slots, and is sealed by the next one to start.
`launches/<batch>` names the flow run last launched for a batch, so the sweeper does not launch
it again while that run waits for a worker slot (each extra run costs seconds of CPU and lengthens
the very queue it waits in).

This is the embedded backend of the spool protocol (`flowhook.spool.protocol`); `S3Spool` is the other.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from flowhook.durable import fsync_dir, write_file
from flowhook.events import Event
from flowhook.spool.batches import (
    BatchNotFound,
    BatchRef,
    State,
    decode_events,
    encode_event,
    event_type_of,
    flight_rows,
    line_ids,
    new_batch_id,
    take_batches,
)


class Spool:
    """The state folders under one root, and the moves between them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for state in State:
            (root / state.value).mkdir(parents=True, exist_ok=True)
        self.leases = root / "leases"
        self.leases.mkdir(exist_ok=True)
        self.launches = root / "launches"
        self.launches.mkdir(exist_ok=True)

    @property
    def url(self) -> str:
        return str(self.root)

    def note_launch(self, batch_id: str, run_id: str) -> None:
        """Remember the flow run launched for a batch (a hint: without it, the sweeper launches by age alone)."""
        (self.launches / batch_id).write_text(run_id)

    def launch_of(self, batch_id: str) -> tuple[str, float] | None:
        """(flow run id, seconds since) of the batch's latest launch; None if none is noted."""
        path = self.launches / batch_id
        try:
            return path.read_text(), time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return None

    def touch_lease(self, event_type: str, owner: str) -> None:
        """Say that `owner` is awake and taking batches of `event_type` (call at least every second)."""
        (self.leases / f"{event_type}@{owner}").touch()  # an existing file gets a new mtime

    def drop_lease(self, event_type: str, owner: str) -> None:
        (self.leases / f"{event_type}@{owner}").unlink(missing_ok=True)

    def has_lease(self, event_type: str, *, fresh_within: float) -> bool:
        """Whether a run touched a lease on `event_type` in the last `fresh_within` seconds."""
        now = time.time()
        for entry in os.scandir(self.leases):
            if entry.name.startswith(f"{event_type}@"):
                try:
                    if now - entry.stat().st_mtime <= fresh_within:
                        return True
                except FileNotFoundError:
                    continue
        return False

    def _unclaimed(self, event_type: str) -> Iterator[tuple[State, str, float]]:
        """(state, batch id, age) of every sealed, unclaimed batch of one type (in ready/ or sent/)."""
        for state in (State.READY, State.SENT):
            for batch_id, age in self.entries(state):
                if event_type_of(batch_id) == event_type:
                    yield state, batch_id, age

    def waiting(self, event_type: str, *, younger_than: float | None = None) -> list[str]:
        """Ids of the sealed, unclaimed batches of one type (given `younger_than`: those unclaimed for less
        than that many seconds since they were sealed or launched again)."""
        return [
            batch_id for _, batch_id, age in self._unclaimed(event_type) if younger_than is None or age < younger_than
        ]

    def pending(self, event_type: str, *, max_events: int) -> list[BatchRef]:
        """Sealed, unclaimed batches of one type, oldest first, up to about `max_events` events (at least one)."""
        oldest_first = sorted(self._unclaimed(event_type), key=lambda item: -item[2])
        return take_batches(self.ref, ((state, batch_id) for state, batch_id, _ in oldest_first), max_events=max_events)

    def path(self, state: State, batch_id: str) -> Path:
        return self.root / state.value / f"{batch_id}.jsonl"

    def open_path(self, slot: Path, batch_id: str) -> Path:
        """Where a gateway process appends to an open batch: in its slot of `open/`."""
        return slot / f"{batch_id}.jsonl"

    def open_files(self) -> Iterator[tuple[str, Path]]:
        """(batch id, path) of every open batch file: in any process's slot, or flat in `open/` (older gateways)."""
        root = self.root / State.OPEN.value
        for entry in os.scandir(root):
            if entry.name.endswith(".jsonl"):
                yield entry.name.removesuffix(".jsonl"), Path(entry.path)
            elif entry.is_dir() and not entry.name.startswith("."):
                with contextlib.suppress(FileNotFoundError):  # a slot removed while this lists it
                    for inner in os.scandir(entry.path):
                        if inner.name.endswith(".jsonl"):
                            yield inner.name.removesuffix(".jsonl"), Path(inner.path)

    def seal_file(self, path: Path, batch_id: str, *, touch: bool = False) -> bool:
        """Move an open batch file (wherever it is under `open/`) into `ready/`, durably; False if it is gone.
        `touch`: its age starts now (a recovered batch is as new to the runs as one sealed now)."""
        target = self.path(State.READY, batch_id)
        try:
            os.rename(path, target)
        except FileNotFoundError:
            return False
        if touch:
            os.utime(target)
        fsync_dir(target.parent)
        return True

    def move(self, batch_id: str, source: State, target: State, *, touch: bool = False) -> bool:
        """Rename a batch from one state to another, durably; False if it was not in `source`."""
        target_path = self.path(target, batch_id)
        try:
            os.rename(self.path(source, batch_id), target_path)
        except FileNotFoundError:
            return False
        if touch:
            os.utime(target_path)
        fsync_dir(target_path.parent)
        return True

    def state_of(self, batch_id: str) -> State | None:
        for state in State:
            if self.path(state, batch_id).exists():
                return state
        return None

    def write_batch(self, events: Sequence[Event]) -> BatchRef:
        """Write events of one type straight into `ready/` as a sealed batch (for replays and tools)."""
        types = {event.type for event in events}
        if len(types) != 1:
            raise ValueError(f"a batch holds events of one type, not {sorted(types)}")
        batch_id = new_batch_id(types.pop())
        write_file(self.path(State.READY, batch_id), b"".join(encode_event(event) for event in events))
        return BatchRef(
            batch_id=batch_id, event_type=event_type_of(batch_id), count=len(events), sealed=datetime.now(UTC)
        )

    def put_batch(self, ref: BatchRef, data: bytes) -> BatchRef:
        """Write a sealed batch's lines into `ready/` (the spool protocol's upload; the gateway's own spool
        seals in place instead)."""
        write_file(self.path(State.READY, ref.batch_id), data)
        return ref.model_copy(update={"count": data.count(b"\n")})

    def mark_sent(self, batch_id: str, *, touch: bool = False) -> None:
        """Prefect was told: READY → SENT (a no-op when a run claimed it already)."""
        self.move(batch_id, State.READY, State.SENT, touch=touch)

    def restart_clock(self, state: State, batch_id: str) -> None:
        """Make the batch's age 0 again; FileNotFoundError when it left `state`."""
        os.utime(self.path(state, batch_id))

    def claim_events(self, batch_id: str, *, owner: str | None = None) -> list[Event] | None:
        """`claim`, then `read`: the batch's events, or None when another run has it or it is done."""
        path = self.claim(batch_id, owner=owner)
        return None if path is None else self.read(path)

    def owner_path(self, batch_id: str) -> Path:
        """Where a claimed batch names the run that holds it (a hint: without it, the claim timeout applies)."""
        return self.root / State.CLAIMED.value / f"{batch_id}.owner"

    def claim(self, batch_id: str, *, owner: str | None = None) -> Path | None:
        """Take a sealed batch for processing; None when another run has it or it is done already.

        `owner` is the claiming run's lease owner: once its lease is stale, `stale` counts the batch as left. The
        same owner claiming again (its step failed past the claim and is tried again) gets the batch again.
        """
        for _ in range(3):
            # In the order batches move (ready → sent), so a concurrent move cannot slip past both.
            for source in (State.READY, State.SENT):
                if self.move(batch_id, source, State.CLAIMED, touch=True):
                    if owner is not None:
                        self.owner_path(batch_id).write_text(owner)
                    return self.path(State.CLAIMED, batch_id)
            state = self.state_of(batch_id)
            if state is State.CLAIMED and owner is not None and self._owned_by(batch_id, owner):
                return self.path(State.CLAIMED, batch_id)  # a run trying its step again: still its batch
            if state in (State.CLAIMED, State.DONE):
                return None
            if state is None:
                break
            # Still open, or released back to ready meanwhile: look again.
        raise BatchNotFound(f"batch {batch_id} is not in the spool at {self.root}")

    def _owned_by(self, batch_id: str, owner: str) -> bool:
        try:
            return self.owner_path(batch_id).read_text() == owner
        except FileNotFoundError:
            return False

    def complete(self, *batch_ids: str) -> None:
        """Mark claimed batches as stored, with one folder sync for all of them: a completion lost to a crash only
        sends the batch round again, and the store, keyed by event id, stores nothing twice."""
        moved = []
        for batch_id in batch_ids:
            target = self.path(State.DONE, batch_id)
            try:
                os.rename(self.path(State.CLAIMED, batch_id), target)
            except FileNotFoundError:
                continue  # completed already (or never claimed): a no-op
            os.utime(target)
            moved.append(batch_id)
        if not moved:
            return
        fsync_dir(self.root / State.DONE.value)
        for batch_id in moved:
            self.owner_path(batch_id).unlink(missing_ok=True)
            (self.launches / batch_id).unlink(missing_ok=True)

    def release(self, batch_id: str) -> bool:
        """Give a claimed batch back (its run died) so it can be launched again."""
        if not self.move(batch_id, State.CLAIMED, State.READY, touch=True):
            return False
        self.owner_path(batch_id).unlink(missing_ok=True)
        return True

    def owner_gone(self, batch_id: str, *, after: float) -> bool:
        """Whether the run that claimed the batch has not touched its lease for `after` seconds, or dropped it
        (it ended without completing the batch). False when the claim names no run: only its age tells then."""
        try:
            owner = self.owner_path(batch_id).read_text()
        except FileNotFoundError:
            return False
        try:
            touched = (self.leases / f"{event_type_of(batch_id)}@{owner}").stat().st_mtime
        except FileNotFoundError:
            return True
        return time.time() - touched >= after

    def read(self, path: Path) -> list[Event]:
        """The events in a batch file. A torn or garbled line is a write never acknowledged: skip it."""
        with path.open("rb") as fh:
            return decode_events(fh, path.name)

    def in_flight(self) -> list[tuple[str, str, datetime, datetime]]:
        """(id, type, occurred, received) of every event in a batch not yet stored: open, ready, sent or claimed.

        A batch that moves on while this reads is read where it went or skipped; a claimed batch may
        already be stored, so the caller matches ids against the store.
        """
        found = []
        for _, path in list(self.open_files()):
            with contextlib.suppress(FileNotFoundError):
                found += flight_rows(path.read_bytes())
        for state in (State.READY, State.SENT, State.CLAIMED):
            for batch_id, _ in list(self.entries(state)):
                try:
                    found += flight_rows(self.path(state, batch_id).read_bytes())
                except FileNotFoundError:
                    continue
        return found

    def done_ids(self) -> dict[str, list[str]]:
        """{batch id: its event ids} of every done batch still kept (pruning deletes them); for the audit."""
        found = {}
        for batch_id, _ in list(self.entries(State.DONE)):
            with contextlib.suppress(FileNotFoundError):  # pruned meanwhile
                found[batch_id] = line_ids(self.path(State.DONE, batch_id).read_bytes())
        return found

    def ref(self, state: State, batch_id: str) -> BatchRef:
        """A reference to a batch already on disk (the sweeper's view: counted from the file)."""
        path = self.path(state, batch_id)
        with path.open("rb") as fh:
            count = sum(1 for line in fh if line.endswith(b"\n"))
        sealed = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        return BatchRef(batch_id=batch_id, event_type=event_type_of(batch_id), count=count, sealed=sealed)

    def entries(self, state: State) -> Iterator[tuple[str, float]]:
        """(batch id, age in seconds) of every batch in one state."""
        now = time.time()
        if state is State.OPEN:
            for batch_id, path in self.open_files():
                with contextlib.suppress(FileNotFoundError):
                    yield batch_id, now - path.stat().st_mtime
            return
        for entry in os.scandir(self.root / state.value):
            if entry.name.endswith(".jsonl"):
                try:
                    age = now - entry.stat().st_mtime
                except FileNotFoundError:
                    continue
                yield entry.name.removesuffix(".jsonl"), age

    def stale(
        self, *, unclaimed_after: float, claimed_after: float, dead_run_after: float | None = None
    ) -> list[tuple[State, str]]:
        """Batches a lost trigger or a dead run left behind, oldest first.

        A claimed batch is left behind once it is `claimed_after` old, or, given `dead_run_after`, as soon as
        its run's lease has gone that long untouched.
        """
        found: list[tuple[float, State, str]] = []
        for state, limit in ((State.READY, unclaimed_after), (State.SENT, unclaimed_after)):
            found += [(-age, state, bid) for bid, age in self.entries(state) if age >= limit]
        found += [
            (-age, State.CLAIMED, bid)
            for bid, age in self.entries(State.CLAIMED)
            if age >= claimed_after or (dead_run_after is not None and self.owner_gone(bid, after=dead_run_after))
        ]
        return [(state, bid) for _, state, bid in sorted(found)]

    def prune_done(self, *, older_than: float) -> int:
        """Delete stored batches older than `older_than` seconds; returns how many."""
        pruned = 0
        for batch_id, age in list(self.entries(State.DONE)):
            if age >= older_than:
                self.path(State.DONE, batch_id).unlink(missing_ok=True)
                pruned += 1
        for entry in os.scandir(self.launches):  # notes of batches that went another way (e.g. a lost file)
            with contextlib.suppress(FileNotFoundError):
                if time.time() - entry.stat().st_mtime >= older_than and self.state_of(entry.name) is None:
                    os.unlink(entry.path)
        return pruned

    def counts(self) -> dict[str, int]:
        """Batches per state, for status output."""
        return {state.value: sum(1 for _ in self.entries(state)) for state in State}
