"""Batch files on a real disk: state moves by rename, exactly-once claims, staleness (the process race runs in
the spool contract tests, on the folder and on S3)."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flowhook.events import Event
from flowhook.spool import BatchNotFound, Spool, State, event_type_of, new_batch_id
from flowhook.spool.batches import encode_event
from tests import factories


def make_event(n: int, event_type: str = "user_request") -> Event:
    return factories.make_event(n, event_type, transit_seconds=1, data={"user_id": f"u{n}", "action": "search"})


def write_batch(spool: Spool, state: State, events: list[Event], *, age: float | None = None, tail: bytes = b"") -> str:
    """A batch file in `state` holding `events` (and `tail`, e.g. a torn line), `age` seconds old."""
    batch_id = new_batch_id(events[0].type if events else "user_request")
    path = spool.path(state, batch_id)
    path.write_bytes(b"".join(encode_event(e) for e in events) + tail)
    if age is not None:
        then = time.time() - age
        os.utime(path, (then, then))
    return batch_id


def age_of(path: Path) -> float:
    return time.time() - path.stat().st_mtime


def test_a_spool_makes_its_state_folders(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "a" / "spool")
    assert sorted(p.name for p in spool.root.iterdir()) == sorted([*(s.value for s in State), "leases", "launches"])
    Spool(spool.root)  # again: no error


@pytest.mark.parametrize(("event_type", "expected"), [("user_request", "user_request"), ("a", "a"), ("x9_y", "x9_y")])
def test_a_batch_id_names_its_event_type(event_type: str, expected: str) -> None:
    batch_id = new_batch_id(event_type)
    assert event_type_of(batch_id) == expected
    assert batch_id.startswith(f"{event_type}-")


def test_batch_ids_are_unique() -> None:
    assert len({new_batch_id("t") for _ in range(1000)}) == 1000


@pytest.mark.parametrize("source", [State.READY, State.SENT])
def test_a_sealed_batch_is_claimed_exactly_once(tmp_path: Path, source: State) -> None:
    spool = Spool(tmp_path)
    batch_id = write_batch(spool, source, [make_event(1)], age=60)
    path = spool.claim(batch_id)
    assert path == spool.path(State.CLAIMED, batch_id)
    assert spool.state_of(batch_id) is State.CLAIMED
    assert age_of(path) < 5  # the claim restarts its clock, for the claim timeout
    assert spool.claim(batch_id) is None
    assert spool.state_of(batch_id) is State.CLAIMED


def test_a_done_batch_cannot_be_claimed(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    batch_id = write_batch(spool, State.READY, [make_event(1)])
    assert spool.claim(batch_id) is not None
    spool.complete(batch_id)
    assert spool.claim(batch_id) is None
    assert spool.state_of(batch_id) is State.DONE


def test_claiming_an_unknown_batch_raises_batch_not_found(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    with pytest.raises(BatchNotFound, match="user_request-1-abc"):
        spool.claim("user_request-1-abc")


def test_an_open_batch_cannot_be_claimed(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    batch_id = write_batch(spool, State.OPEN, [make_event(1)])
    with pytest.raises(BatchNotFound):
        spool.claim(batch_id)
    assert spool.state_of(batch_id) is State.OPEN


def test_a_claim_racing_the_forwarders_move_to_sent_still_wins(tmp_path: Path) -> None:
    class ForwardedMidClaim(Spool):
        """The forwarder's READY → SENT rename lands just after the claimer's SENT → CLAIMED attempt."""

        forwarded = False

        def move(self, batch_id: str, source: State, target: State, *, touch: bool = False) -> bool:
            moved = super().move(batch_id, source, target, touch=touch)
            if (source, target) == (State.SENT, State.CLAIMED) and not moved and not self.forwarded:
                self.forwarded = True
                assert super().move(batch_id, State.READY, State.SENT)
            return moved

    spool = ForwardedMidClaim(tmp_path)
    batch_id = write_batch(spool, State.READY, [make_event(1)])
    assert spool.claim(batch_id) == spool.path(State.CLAIMED, batch_id)


def test_complete_moves_a_claimed_batch_to_done(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    batch_id = write_batch(spool, State.CLAIMED, [make_event(1)], age=60)
    spool.complete(batch_id)
    assert spool.state_of(batch_id) is State.DONE
    assert age_of(spool.path(State.DONE, batch_id)) < 5


def test_release_gives_a_claimed_batch_back(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    batch_id = write_batch(spool, State.CLAIMED, [make_event(1)], age=60)
    assert spool.release(batch_id) is True
    assert spool.state_of(batch_id) is State.READY
    assert age_of(spool.path(State.READY, batch_id)) < 5
    assert spool.release(batch_id) is False  # not claimed any more
    assert spool.claim(batch_id) is not None


def test_move_reports_a_batch_missing_from_the_source(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    batch_id = write_batch(spool, State.READY, [make_event(1)])
    assert spool.move(batch_id, State.SENT, State.CLAIMED) is False
    assert spool.move(batch_id, State.READY, State.SENT) is True
    assert spool.state_of(batch_id) is State.SENT
    assert spool.state_of("user_request-1-missing") is None


def test_read_returns_the_events_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    events = [make_event(n) for n in range(5)]
    batch_id = write_batch(spool, State.READY, events)
    assert spool.read(spool.path(State.READY, batch_id)) == events


@pytest.mark.parametrize("cut", [1, 10, -2])
def test_read_skips_a_torn_last_line(tmp_path: Path, cut: int) -> None:
    spool = Spool(tmp_path)
    events = [make_event(n) for n in range(3)]
    torn = encode_event(make_event(99))[:cut]
    batch_id = write_batch(spool, State.READY, events, tail=torn)
    assert spool.read(spool.path(State.READY, batch_id)) == events
    assert spool.ref(State.READY, batch_id).count == 3


@pytest.mark.parametrize(
    "garbled",
    [
        [b"not json\n"],
        [b"\n"],
        [b'{"id": "e1"}\n'],  # JSON, but not an event
        [b"[1, 2]\n"],
        # Halves of one event, whole only if joined: each is a line of its own, and neither is an event.
        [encode_event(make_event(97))[:40] + b"\n", encode_event(make_event(97))[40:]],
        [encode_event(make_event(98))[:-1] + b", " + encode_event(make_event(99))],  # two events, one line
    ],
)
def test_read_skips_only_the_garbled_lines_between_whole_ones(tmp_path: Path, garbled: list[bytes]) -> None:
    spool = Spool(tmp_path)
    events = [make_event(n) for n in range(4)]
    lines = [encode_event(e) for e in events]
    batch_id = new_batch_id("user_request")
    spool.path(State.READY, batch_id).write_bytes(b"".join([*lines[:2], *garbled, *lines[2:]]))
    assert spool.read(spool.path(State.READY, batch_id)) == events


def test_read_of_an_empty_file_is_empty(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    batch_id = write_batch(spool, State.READY, [])
    assert spool.read(spool.path(State.READY, batch_id)) == []


def test_ref_describes_a_batch_on_disk(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    batch_id = write_batch(spool, State.SENT, [make_event(n, "data_update") for n in range(4)], age=120)
    ref = spool.ref(State.SENT, batch_id)
    assert (ref.batch_id, ref.event_type, ref.count, ref.emitted) == (batch_id, "data_update", 4, None)
    assert abs((datetime.now(UTC) - ref.sealed).total_seconds() - 120) < 5


def test_list_gives_ids_and_ages_of_one_state(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    old = write_batch(spool, State.READY, [make_event(1)], age=100)
    new = write_batch(spool, State.READY, [make_event(2)])
    write_batch(spool, State.SENT, [make_event(3)])
    (spool.root / "ready" / "notes.txt").write_text("not a batch")
    ages = dict(spool.entries(State.READY))
    assert set(ages) == {old, new}
    assert 99 <= ages[old] < 105
    assert 0 <= ages[new] < 5


def test_stale_finds_old_unclaimed_and_old_claimed_batches_oldest_first(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    ready_old = write_batch(spool, State.READY, [make_event(1)], age=40)
    sent_old = write_batch(spool, State.SENT, [make_event(2)], age=50)
    claimed_old = write_batch(spool, State.CLAIMED, [make_event(3)], age=700)
    write_batch(spool, State.READY, [make_event(4)], age=5)  # fresh
    write_batch(spool, State.SENT, [make_event(5)])  # fresh
    write_batch(spool, State.CLAIMED, [make_event(6)], age=40)  # claimed, but within the claim timeout
    write_batch(spool, State.OPEN, [make_event(7)], age=1000)  # the gateway's, never stale
    write_batch(spool, State.DONE, [make_event(8)], age=1000)  # finished
    stale = spool.stale(unclaimed_after=30, claimed_after=600)
    assert stale == [(State.CLAIMED, claimed_old), (State.SENT, sent_old), (State.READY, ready_old)]


def test_a_claim_names_its_owner_until_the_batch_is_completed_or_released(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    done, back = (write_batch(spool, State.READY, [make_event(n)]) for n in (1, 2))
    for batch_id in (done, back):
        assert spool.claim(batch_id, owner="run-1") is not None
        assert spool.owner_path(batch_id).read_text() == "run-1"
    assert set(dict(spool.entries(State.CLAIMED))) == {done, back}  # the owner files are not batches
    spool.complete(done)
    assert spool.release(back) is True
    assert sorted((spool.root / "claimed").iterdir()) == []


def test_owner_gone_follows_the_owners_lease(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    named, unnamed = (write_batch(spool, State.READY, [make_event(n)]) for n in (1, 2))
    spool.touch_lease("user_request", "run-1")
    spool.claim(named, owner="run-1")
    spool.claim(unnamed)
    assert not spool.owner_gone(named, after=30)  # touched just now
    then = time.time() - 31
    os.utime(spool.leases / "user_request@run-1", (then, then))
    assert spool.owner_gone(named, after=30)
    spool.drop_lease("user_request", "run-1")
    assert spool.owner_gone(named, after=30)  # the run ended without completing it
    assert not spool.owner_gone(unnamed, after=30)  # no owner named: only the claim's age tells


def test_stale_counts_a_dead_runs_claimed_batch_only_when_asked(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    batch_id = write_batch(spool, State.READY, [make_event(1)])
    spool.claim(batch_id, owner="gone")  # no lease file at all: a run that never lived or ended
    assert spool.stale(unclaimed_after=30, claimed_after=600) == []
    assert spool.stale(unclaimed_after=30, claimed_after=600, dead_run_after=30) == [(State.CLAIMED, batch_id)]


def test_nothing_is_stale_in_a_fresh_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    for state in State:
        write_batch(spool, state, [make_event(1)])
    assert spool.stale(unclaimed_after=30, claimed_after=600) == []


def test_prune_done_deletes_only_old_done_batches(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    old = write_batch(spool, State.DONE, [make_event(1)], age=7200)
    fresh = write_batch(spool, State.DONE, [make_event(2)], age=60)
    ready_old = write_batch(spool, State.READY, [make_event(3)], age=7200)
    assert spool.prune_done(older_than=3600) == 1
    assert spool.state_of(old) is None
    assert spool.state_of(fresh) is State.DONE
    assert spool.state_of(ready_old) is State.READY
    assert spool.prune_done(older_than=3600) == 0


def test_counts_per_state(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    assert spool.counts() == {state.value: 0 for state in State}
    for state, n in ((State.READY, 2), (State.CLAIMED, 1), (State.DONE, 3)):
        for i in range(n):
            write_batch(spool, state, [make_event(i)])
    assert spool.counts() == {"open": 0, "ready": 2, "sent": 0, "claimed": 1, "done": 3}
