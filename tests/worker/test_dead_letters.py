"""Re-spooling dead letters and launching their runs, on a real spool; Prefect stands in as a launch callable."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from flowhook.spool import BatchRef, Spool, State
from flowhook.store import DeadLetter
from flowhook.worker.dead_letters import launch_all, respool
from tests.factories import T0, make_event


def letter(n: int, event_type: str = "user_request") -> DeadLetter:
    return DeadLetter(
        event=make_event(n, event_type), error="RuntimeError: no", attempts=3, stored=T0 + timedelta(minutes=n),
        batch_id="b0",
    )  # fmt: skip


def test_respool_writes_one_batch_per_type_chunked_at_its_size(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    letters = [letter(n, "user_request" if n % 2 else "data_update") for n in range(7)]
    sizes = {"user_request": 2, "data_update": 10}
    refs = respool(spool, letters, max_events=sizes.__getitem__)
    assert [(ref.event_type, ref.count) for ref in refs] == [
        ("data_update", 4),
        ("user_request", 2),
        ("user_request", 1),
    ]
    batches = [[event.id for event in spool.read(spool.path(State.READY, ref.batch_id))] for ref in refs]
    assert batches == [["e0", "e2", "e4", "e6"], ["e1", "e3"], ["e5"]]
    assert spool.read(spool.path(State.READY, refs[0].batch_id))[0] == letters[0].event


class Prefect:
    """The launch callable: records each batch, raising for the types told to."""

    def __init__(self, errors: dict[str, Exception] | None = None) -> None:
        self.launched: list[BatchRef] = []
        self.errors = errors or {}

    def __call__(self, ref: BatchRef) -> str:
        if ref.event_type in self.errors:
            raise self.errors[ref.event_type]
        self.launched.append(ref)
        return f"run-{len(self.launched)}"


def test_launched_batches_move_to_sent_with_an_emitted_time(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    refs = respool(spool, [letter(1), letter(2, "data_update")], max_events=lambda _: 10)
    prefect = Prefect()
    result = launch_all(spool, refs, prefect)
    assert [ref.batch_id for ref in result.launched] == [ref.batch_id for ref in refs]
    assert (result.failed, result.unreachable) == ([], None)
    assert all(ref.emitted is not None for ref in prefect.launched)
    assert [spool.state_of(ref.batch_id) for ref in refs] == [State.SENT, State.SENT]
    # Noted, so the sweeper leaves each batch to its run while that run waits for a worker.
    assert [(spool.launch_of(ref.batch_id) or ("",))[0] for ref in refs] == ["run-1", "run-2"]


def test_a_failed_launch_stops_no_other(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    refs = respool(spool, [letter(1), letter(2, "data_update")], max_events=lambda _: 10)
    result = launch_all(spool, refs, Prefect({"data_update": LookupError("no deployment")}))
    assert [ref.event_type for ref in result.launched] == ["user_request"]
    assert [(ref.event_type, error) for ref, error in result.failed] == [("data_update", "LookupError: no deployment")]
    assert result.unreachable is None
    assert spool.state_of(refs[0].batch_id) is State.READY  # data_update sorts first: it waits for the sweeper


@pytest.mark.parametrize("error", [httpx.ConnectError("Connection refused"), ConnectionRefusedError(111, "refused")])
def test_once_prefect_is_unreachable_the_rest_wait_in_ready(tmp_path: Path, error: Exception) -> None:
    spool = Spool(tmp_path / "spool")
    refs = respool(spool, [letter(n, f"type_{n}") for n in range(3)], max_events=lambda _: 10)
    prefect = Prefect({"type_1": error})
    result = launch_all(spool, refs, prefect)
    assert [ref.event_type for ref in result.launched] == ["type_0"]
    assert [ref.event_type for ref, _ in result.failed] == ["type_1", "type_2"]  # type_2 is not even tried
    assert result.unreachable is not None and type(error).__name__ in result.unreachable
    assert [spool.state_of(ref.batch_id) for ref in refs] == [State.SENT, State.READY, State.READY]
