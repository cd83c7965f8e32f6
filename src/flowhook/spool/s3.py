"""The spool in an S3 bucket, so worker runs on other machines (ECS tasks) can take the gateway's batches.

Under the spool's key prefix:

    batches/<batch>.jsonl     the batch's lines, immutable (metadata: count, sealed)
    state/<batch>/ready       sealed and stored here          ┐ one LIST of `state/<type>-` shows
    state/<batch>/sent        Prefect told                    │ every unclaimed batch of a type
    state/<batch>/claim       a run has it (body: its owner)  ┘ (what an awake run polls for)
    done/<batch>              stored in the event store
    leases/<type>@<owner>     an awake run (re-put every second)
    launches/<batch>          the flow run last launched for it (body: its id)

A batch's state is the strongest marker it has: done > claim > sent > ready. The claim is created with
`If-None-Match: *`, so of any number of claimers exactly one gets it; completing writes `done/` and then
deletes the batch's state markers and launch note; releasing deletes the claim. A marker written after the
batch was completed (a slow forwarder, a re-upload after a crash) is found and deleted by whoever meets it,
since `done/` is looked at after every such write and by every claim.

Ages are the local clock minus the object's LastModified (S3's clock, whole seconds): the spool assumes the
machines' clocks agree with S3's to within a second or two (NTP, the Amazon Time Sync Service), and warns
once when a write's Date header shows more than `s3_objects.MAX_SKEW_SECONDS` between them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from flowhook.events import Event
from flowhook.spool.batches import (
    BatchNotFound,
    BatchRef,
    State,
    decode_batch,
    encode_event,
    event_type_of,
    flight_rows,
    line_ids,
    new_batch_id,
    take_batches,
)
from flowhook.spool.s3_objects import S3Objects, parse_s3_url

_UNCLAIMED = ("ready", "sent")
"""The markers of a sealed batch no run has."""


class S3Spool:
    """Batches and their state as objects under one prefix of an S3 bucket (see the module's docstring)."""

    def __init__(self, client: Any, bucket: str, prefix: str = "", *, clock: Callable[[], float] = time.time) -> None:
        self.objects = S3Objects(client, bucket, clock=clock)
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._clock = clock

    @classmethod
    def from_url(cls, url: str, *, client: Any) -> S3Spool:
        bucket, prefix = parse_s3_url(url)
        return cls(client, bucket, prefix)

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    # --- batches ----------------------------------------------------------------------------------------

    def put_batch(self, ref: BatchRef, data: bytes) -> BatchRef | None:
        """Upload a sealed batch, then mark it READY. A second upload of the same batch (the gateway crashed
        before deleting its file) writes nothing new, and nothing at all once the batch is done."""
        count = data.count(b"\n")
        created = self.objects.put(
            self._content(ref.batch_id),
            data,
            absent=True,
            metadata={"count": str(count), "sealed": ref.sealed.isoformat()},
        )
        if created:
            self.objects.put(self._marker(ref.batch_id, "ready"))
        elif not self._mark(ref.batch_id, "ready"):
            return None
        return ref.model_copy(update={"count": count, "spool": self.url})

    def write_batch(self, events: Sequence[Event]) -> BatchRef:
        types = {event.type for event in events}
        if len(types) != 1:
            raise ValueError(f"a batch holds events of one type, not {sorted(types)}")
        batch_id = new_batch_id(types.pop())
        ref = BatchRef(batch_id=batch_id, event_type=event_type_of(batch_id), count=len(events), sealed=_now())
        stored = self.put_batch(ref, b"".join(encode_event(event) for event in events))
        assert stored is not None  # a new id cannot be done already
        return stored

    def ref(self, state: State, batch_id: str) -> BatchRef:
        head = self.objects.head(self._content(batch_id))
        if head is None:
            raise FileNotFoundError(f"batch {batch_id} is not in {self.url}")
        meta = head.get("Metadata", {})
        modified: datetime = head["LastModified"]
        return BatchRef(
            batch_id=batch_id,
            event_type=event_type_of(batch_id),
            count=int(meta.get("count", 0)),
            sealed=datetime.fromisoformat(meta["sealed"]) if "sealed" in meta else modified,
            spool=self.url,
        )

    def state_of(self, batch_id: str) -> State | None:
        if self.objects.exists(self._done(batch_id)):
            return State.DONE
        marks = self._markers(f"{batch_id}/").get(batch_id, {})
        for name, state in (("claim", State.CLAIMED), ("sent", State.SENT), ("ready", State.READY)):
            if name in marks:
                return state
        return State.READY if self.objects.exists(self._content(batch_id)) else None

    # --- moves ------------------------------------------------------------------------------------------

    def mark_sent(self, batch_id: str, *, touch: bool = False) -> None:
        self._mark(batch_id, "sent")  # a new object: its clock restarts whatever `touch` says

    def restart_clock(self, state: State, batch_id: str) -> None:
        marks = self._markers(f"{batch_id}/").get(batch_id, {})
        if "claim" in marks or state.value not in _UNCLAIMED or not set(_UNCLAIMED) & set(marks):
            raise FileNotFoundError(f"batch {batch_id} is no longer {state.value} in {self.url}")
        self._mark(batch_id, state.value)

    def claim_events(self, batch_id: str, *, owner: str | None = None) -> list[Event] | None:
        body = (owner or "").encode()
        claim = self._marker(batch_id, "claim")
        # A run retrying after a failure past this write (its lease owner) finds its own claim: still its batch.
        if not self.objects.put(claim, body, absent=True) and (owner is None or self.objects.get(claim) != body):
            return None
        if self.objects.exists(self._done(batch_id)):
            self._forget(batch_id)  # claimed again after it was completed (a late trigger): not ours to redo
            return None
        data = self.objects.get(self._content(batch_id))
        if data is None:
            self.objects.delete([claim])
            raise BatchNotFound(f"batch {batch_id} is not in the spool at {self.url}")
        return decode_batch(data, f"{batch_id}.jsonl")

    def complete(self, *batch_ids: str) -> None:
        for batch_id in batch_ids:
            self.objects.put(self._done(batch_id))
            self._forget(batch_id)

    def release(self, batch_id: str) -> bool:
        if not self.objects.exists(self._marker(batch_id, "claim")):
            return False
        if self.objects.exists(self._done(batch_id)):
            self._forget(batch_id)
            return False
        self.objects.put(self._marker(batch_id, "ready"))  # first, so it is never without a state marker
        self.objects.delete([self._marker(batch_id, "claim"), self._marker(batch_id, "sent")])
        return True

    # --- finding batches --------------------------------------------------------------------------------

    def waiting(self, event_type: str, *, younger_than: float | None = None) -> list[str]:
        now = self._clock()
        return [
            batch_id
            for since, batch_id in self._unclaimed(event_type)
            if younger_than is None or now - since < younger_than
        ]

    def pending(self, event_type: str, *, max_events: int) -> list[BatchRef]:
        unclaimed = ((State.READY, batch_id) for _, batch_id in self._unclaimed(event_type))
        return take_batches(self.ref, unclaimed, max_events=max_events)

    def stale(
        self, *, unclaimed_after: float, claimed_after: float, dead_run_after: float | None = None
    ) -> list[tuple[State, str]]:
        now = self._clock()
        leases: dict[str, float] | None = None
        found: list[tuple[float, str, State]] = []
        for batch_id, marks in self._markers().items():
            if "claim" in marks:
                age = now - marks["claim"]
                if age < claimed_after:
                    if dead_run_after is None:
                        continue
                    leases = self._leases("") if leases is None else leases  # one LIST for every claim
                    if not self._owner_gone(batch_id, dead_run_after, leases):
                        continue
                found.append((-age, batch_id, State.CLAIMED))
            elif unclaimed := [marks[name] for name in _UNCLAIMED if name in marks]:
                age = now - max(unclaimed)
                if age >= unclaimed_after:
                    found.append((-age, batch_id, State.SENT if "sent" in marks else State.READY))
        stale = []
        for _, batch_id, state in sorted(found):
            if self.objects.exists(self._done(batch_id)):
                self._forget(batch_id)  # completed, but its markers outlived it (a crash mid-way): clear them
                continue
            stale.append((state, batch_id))
        return stale

    def owner_gone(self, batch_id: str, *, after: float) -> bool:
        return self._owner_gone(batch_id, after, None)

    def _owner_gone(self, batch_id: str, after: float, leases: dict[str, float] | None) -> bool:
        owner = (self.objects.get(self._marker(batch_id, "claim")) or b"").decode()
        if not owner:
            return False  # no claim, or one that names no run: only its age tells
        name = f"{event_type_of(batch_id)}@{owner}"
        if leases is None:
            head = self.objects.head(self._key("leases", name))
            touched = None if head is None else head["LastModified"].timestamp()
        else:
            touched = leases.get(name)
        return touched is None or self._clock() - touched >= after

    def _unclaimed(self, event_type: str) -> list[tuple[float, str]]:
        """(since, batch id) of the type's sealed, unclaimed batches, oldest first."""
        found = []
        for batch_id, marks in self._markers(f"{event_type}-").items():
            if "claim" not in marks and event_type_of(batch_id) == event_type:
                since = [marks[name] for name in _UNCLAIMED if name in marks]
                if since:
                    found.append((max(since), batch_id))
        return sorted(found)

    # --- leases and launches ----------------------------------------------------------------------------

    def touch_lease(self, event_type: str, owner: str) -> None:
        self.objects.put(self._key("leases", f"{event_type}@{owner}"))  # warns once if S3's clock is far from ours

    def drop_lease(self, event_type: str, owner: str) -> None:
        self.objects.delete([self._key("leases", f"{event_type}@{owner}")])

    def has_lease(self, event_type: str, *, fresh_within: float) -> bool:
        now = self._clock()
        return any(now - touched <= fresh_within for touched in self._leases(f"{event_type}@").values())

    def note_launch(self, batch_id: str, run_id: str) -> None:
        self.objects.put(self._key("launches", batch_id), run_id.encode())

    def launch_of(self, batch_id: str) -> tuple[str, float] | None:
        response = self.objects.get_object(self._key("launches", batch_id))
        if response is None:
            return None
        return response["Body"].read().decode(), self._clock() - response["LastModified"].timestamp()

    # --- reports and upkeep -----------------------------------------------------------------------------

    def in_flight(self) -> list[tuple[str, str, datetime, datetime]]:
        """(id, type, occurred, received) of every event in a batch here not yet done. Batches still on the
        gateway's disk (open, or waiting for S3) are not seen from here."""
        found = []
        for batch_id in self._markers():
            data = self.objects.get(self._content(batch_id))
            if data is not None:
                found += flight_rows(data)
        return found

    def done_ids(self) -> dict[str, list[str]]:
        """{batch id: its event ids} of every done batch still kept: one LIST, then one GET per batch."""
        found = {}
        for key, _ in self.objects.list(self._key("done") + "/"):
            batch_id = key.rsplit("/", 1)[1]
            data = self.objects.get(self._content(batch_id))
            if data is not None:  # pruned meanwhile
                found[batch_id] = line_ids(data)
        return found

    def prune_done(self, *, older_than: float) -> int:
        """Delete done batches (content and marker) older than `older_than` seconds, launch notes of batches
        no longer in flight and leases of runs that ended without dropping them (they died), as old."""
        now = self._clock()
        old = [key for key, modified in self.objects.list(self._key("done") + "/") if now - modified >= older_than]
        batch_ids = [key.rsplit("/", 1)[1] for key in old]
        self.objects.delete([*old, *(self._content(batch_id) for batch_id in batch_ids)])
        in_flight = set(self._markers())
        self.objects.delete(
            [
                key
                for key, modified in self.objects.list(self._key("launches") + "/")
                if now - modified >= older_than and key.rsplit("/", 1)[1] not in in_flight
            ]
        )
        leases = self.objects.list(self._key("leases") + "/")
        self.objects.delete([key for key, modified in leases if now - modified >= older_than])
        return len(batch_ids)

    def counts(self) -> dict[str, int]:
        """Batches per state (`open` batches are on the gateway's disk, not here)."""
        counts = {State.READY.value: 0, State.SENT.value: 0, State.CLAIMED.value: 0}
        for marks in self._markers().values():
            for name, state in (("claim", State.CLAIMED), ("sent", State.SENT), ("ready", State.READY)):
                if name in marks:
                    counts[state.value] += 1
                    break
        counts[State.DONE.value] = sum(1 for _ in self.objects.list(self._key("done") + "/"))
        return counts

    # --- keys -------------------------------------------------------------------------------------------

    def _key(self, *parts: str) -> str:
        return "/".join([self.prefix, *parts] if self.prefix else parts)

    def _content(self, batch_id: str) -> str:
        return self._key("batches", f"{batch_id}.jsonl")

    def _marker(self, batch_id: str, name: str) -> str:
        return self._key("state", batch_id, name)

    def _done(self, batch_id: str) -> str:
        return self._key("done", batch_id)

    def _mark(self, batch_id: str, name: str) -> bool:
        """Put a state marker, unless the batch is done; False if it was (the marker is removed again)."""
        self.objects.put(self._marker(batch_id, name))
        if self.objects.exists(self._done(batch_id)):
            self._forget(batch_id)
            return False
        return True

    def _forget(self, batch_id: str) -> None:
        """Delete a batch's state markers and launch note (it is done, or never was here)."""
        names = ("ready", "sent", "claim")
        self.objects.delete([*(self._marker(batch_id, name) for name in names), self._key("launches", batch_id)])

    def _markers(self, start: str = "") -> dict[str, dict[str, float]]:
        """{batch id: {marker: LastModified}} of the in-flight batches whose ids start with `start`."""
        base = self._key("state") + "/"
        found: dict[str, dict[str, float]] = {}
        for key, modified in self.objects.list(base + start):
            batch_id, _, name = key[len(base) :].rpartition("/")
            found.setdefault(batch_id, {})[name] = modified
        return found

    def _leases(self, start: str) -> dict[str, float]:
        base = self._key("leases") + "/"
        return {key[len(base) :]: modified for key, modified in self.objects.list(base + start)}


def _now() -> datetime:
    return datetime.now(UTC)
