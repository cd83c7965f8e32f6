"""What worker runs, the sweeper, replays and reports need from a spool, whatever holds the batches.

Two backends: `Spool`, state folders on a local (or shared) disk, and `S3Spool`, a bucket that worker
runs on other machines reach. Either way a batch moves READY → SENT → CLAIMED → DONE (a release puts a
claimed batch back to READY), exactly one claimer wins it, and ages are seconds since its last move.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from flowhook.events import Event
from flowhook.spool.batches import BatchRef, State


class SpoolUnavailable(OSError):
    """The shared spool could not be reached or refused the request (S3 down, no such bucket, access denied)."""


class BatchSpool(Protocol):
    """Sealed batches of events, their state, and the leases and launch notes of the runs that take them."""

    @property
    def url(self) -> str:
        """Where the batches are: a folder, or `s3://bucket/prefix`."""
        ...

    def put_batch(self, ref: BatchRef, data: bytes) -> BatchRef | None:
        """Store a sealed batch's lines (the gateway's file) as READY under `ref.batch_id`; idempotent. Its
        reference, counted from `data`; None when that batch was stored and completed here before."""
        ...

    def write_batch(self, events: Sequence[Event]) -> BatchRef:
        """Write events of one type as a new sealed batch in READY (replays and tools)."""
        ...

    def mark_sent(self, batch_id: str, *, touch: bool = False) -> None:
        """Prefect was told about a READY batch: it is SENT (a no-op once claimed). `touch` restarts its clock."""
        ...

    def claim_events(self, batch_id: str, *, owner: str | None = None) -> list[Event] | None:
        """Take a sealed batch and read its events; None when another run has it or it is done already.

        `owner` is the claiming run's lease owner: once that lease is stale, `stale` counts the batch as left.
        Raises `BatchNotFound` if the batch is not in this spool.
        """
        ...

    def complete(self, *batch_ids: str) -> None:
        """Mark claimed batches as stored (DONE), together: a step's batches cost one round of syncs, not one each."""
        ...

    def release(self, batch_id: str) -> bool:
        """Give a claimed batch back (its run died) as READY; False if it was not claimed."""
        ...

    def state_of(self, batch_id: str) -> State | None:
        """The batch's state; None if it is not here."""
        ...

    def ref(self, state: State, batch_id: str) -> BatchRef:
        """A reference to a stored batch (count and sealed time); FileNotFoundError if it is gone."""
        ...

    def restart_clock(self, state: State, batch_id: str) -> None:
        """Make an unclaimed batch's age 0 again; FileNotFoundError if it is no longer in `state` (claimed)."""
        ...

    def waiting(self, event_type: str, *, younger_than: float | None = None) -> list[str]:
        """Ids of the sealed, unclaimed batches of one type; given `younger_than`, only those unclaimed for
        less than that many seconds (since sealed, or since the sweeper launched them again)."""
        ...

    def pending(self, event_type: str, *, max_events: int) -> list[BatchRef]:
        """Sealed, unclaimed batches of one type, oldest first, up to about `max_events` events (at least one)."""
        ...

    def stale(
        self, *, unclaimed_after: float, claimed_after: float, dead_run_after: float | None = None
    ) -> list[tuple[State, str]]:
        """Batches a lost trigger or a dead run left behind, oldest first (see `Spool.stale`)."""
        ...

    def owner_gone(self, batch_id: str, *, after: float) -> bool:
        """Whether the claiming run has not touched its lease for `after` seconds, or dropped it."""
        ...

    def touch_lease(self, event_type: str, owner: str) -> None:
        """Say that `owner` is awake and taking batches of `event_type` (call at least every second)."""
        ...

    def drop_lease(self, event_type: str, owner: str) -> None:
        """`owner` takes no more batches of `event_type`."""
        ...

    def has_lease(self, event_type: str, *, fresh_within: float) -> bool:
        """Whether a run touched a lease on `event_type` in the last `fresh_within` seconds."""
        ...

    def note_launch(self, batch_id: str, run_id: str) -> None:
        """Remember the flow run launched for a batch."""
        ...

    def launch_of(self, batch_id: str) -> tuple[str, float] | None:
        """(flow run id, seconds since) of the batch's latest launch; None if none is noted."""
        ...

    def in_flight(self) -> list[tuple[str, str, datetime, datetime]]:
        """(id, type, occurred, received) of every event in a batch not yet done."""
        ...

    def done_ids(self) -> dict[str, list[str]]:
        """{batch id: its event ids} of every done batch still kept (acknowledged and stored): what the audit checks."""
        ...

    def prune_done(self, *, older_than: float) -> int:
        """Delete done batches older than `older_than` seconds (and forgotten notes); how many batches."""
        ...

    def counts(self) -> dict[str, int]:
        """Batches per state this spool holds, for status output."""
        ...
