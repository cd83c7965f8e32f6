"""The spool's levels, counted from a real spool folder and the inbox's open batches."""

from __future__ import annotations

from pathlib import Path

from flowhook.sampling.levels import SpoolLevels
from flowhook.spool import Spool, State
from tests.factories import make_event

_made = iter(range(1_000_000))


def _batch(spool: Spool, event_type: str, n: int) -> str:
    return spool.write_batch([make_event(next(_made), event_type) for _ in range(n)]).batch_id


def test_levels_per_type_and_state(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    ready = _batch(spool, "user_request", 3)
    sent = _batch(spool, "user_request", 2)
    spool.mark_sent(sent)
    claimed = _batch(spool, "data_update", 4)
    spool.claim(claimed, owner="run")
    done = _batch(spool, "data_update", 5)
    spool.claim(done, owner="run")
    spool.complete(done)  # stored: no longer in the system
    levels = SpoolLevels(spool)
    got = levels({"user_request-open": ("user_request", 7)})
    assert {name: list(counts) for name, counts in got.items()} == {
        "user_request": [7, 3, 2, 0],
        "data_update": [0, 0, 0, 4],
    }
    assert spool.state_of(ready) is State.READY


def test_a_batch_is_counted_once_though_seen_open_and_sealed(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    sealed = _batch(spool, "user_request", 3)
    levels = SpoolLevels(spool)
    # The inbox still lists it as open (its seal finished after the inbox was read): counted there only.
    got = levels({sealed: ("user_request", 3)})
    assert list(got["user_request"]) == [3, 0, 0, 0]


def test_sizes_come_from_what_the_gateway_noted_then_from_the_file(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    batch = _batch(spool, "user_request", 3)
    levels = SpoolLevels(spool)
    levels.note(batch, 30)  # the gateway's own count wins: the file is not read again
    assert list(levels({})["user_request"]) == [0, 30, 0, 0]
    spool.claim(batch, owner="run")
    spool.complete(batch)
    assert levels({}) == {}  # and its noted size is forgotten once it is gone
