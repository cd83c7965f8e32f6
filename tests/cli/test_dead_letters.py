"""`flowhook replay` on a real DuckDB file and spool, with Prefect unreachable: select, re-spool, reprocess."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field
from typer.testing import CliRunner, Result

from flowhook.cli import app
from flowhook.events import EventData, event_type, load_catalog
from flowhook.settings import get_settings
from flowhook.spool import Spool, State
from flowhook.stack import free_port
from flowhook.store import DuckDBStore, StoredEvent
from flowhook.worker import steps

runner = CliRunner()
AT = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
PROBE = "replay_probe"
BROKEN: set[int] = {0, 1, 2, 3, 4}
"""Payloads `n` the probe's handler fails on; a test empties it to "deploy the fix"."""


class ReplayProbe(EventData):
    """A test payload whose handler fails while its `n` is in BROKEN."""

    n: int = Field(description="Which payload this is.")


@event_type(PROBE, ReplayProbe)
def handle_replay_probe(data: ReplayProbe) -> dict[str, Any]:
    if data.n in BROKEN:
        raise RuntimeError(f"handler broken for {data.n}")
    return {"n": data.n}


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("FLOWHOOK_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("FLOWHOOK_PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{free_port()}/api")  # nothing listens: Prefect is down
    monkeypatch.setenv("COLUMNS", "300")  # no wrapping of ids and messages
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def _failed(event_id: str, event_type: str, n: int = 0) -> StoredEvent:
    return StoredEvent(
        id=event_id,
        type=event_type,
        source="test",
        occurred=AT,
        received=AT,
        emitted=AT,
        started=AT,
        stored=None,
        batch_id="b-original",
        flow_run_id="run-1",
        status="failed",
        error=f"RuntimeError: handler broken for {n}",
        data={"n": n},
        result=None,
        attempts=3,
    )


@pytest.fixture
def dead_letters(data_dir: Path) -> DuckDBStore:
    """Five dead letters (failed at 10:00..10:04 UTC: p1 u1 p2 u2 p3) and an ok event."""
    store = DuckDBStore(get_settings().database)
    seeds = [("p1", PROBE), ("u1", "user_request"), ("p2", PROBE), ("u2", "user_request"), ("p3", PROBE)]
    for minute, (event_id, kind) in enumerate(seeds):
        store.write_events([_failed(event_id, kind, n=minute)], stored=AT + timedelta(minutes=minute))
    ok = dataclasses.replace(_failed("fine", PROBE), status="ok", error=None, attempts=1, result={})
    store.write_events([ok], stored=AT)
    return store


def _one_line(result: Result) -> str:
    return " ".join(result.output.split())


def _ready(data_dir: Path) -> dict[str, list[str]]:
    """Ids of the events in each batch waiting in spool/ready, by batch id."""
    spool = Spool(data_dir / "spool")
    return {
        batch_id: [event.id for event in spool.read(spool.path(State.READY, batch_id))]
        for batch_id, _ in spool.entries(State.READY)
    }


def _replay(*args: str) -> Result:
    return runner.invoke(app, ["replay", *args])


def test_dry_run_lists_the_dead_letters_and_changes_nothing(data_dir: Path, dead_letters: DuckDBStore) -> None:
    result = _replay("--dry-run")
    assert result.exit_code == 0, result.output
    out = _one_line(result)
    for event_id in ("p1", "u1", "p2", "u2", "p3"):
        assert f" {event_id} " in out
    assert "fine" not in out
    assert "RuntimeError: handler broken for 3" in out
    assert "would replay 5 dead letters: replay_probe 3, user_request 2 (dry run: nothing changed)" in out
    assert _ready(data_dir) == {}
    assert dead_letters.count_events() == 6 and len(dead_letters.dead_letters()) == 5


def test_replay_by_type_spools_one_batch_and_says_the_sweeper_launches_it(
    data_dir: Path, dead_letters: DuckDBStore
) -> None:
    result = _replay("--type", PROBE)
    assert result.exit_code == 0, result.output
    out = _one_line(result)
    assert "replayed 3 dead letters as 1 batches: replay_probe 3" in out
    assert "Prefect is not reachable at http://127.0.0.1:" in out
    assert "1 batches wait in" in out and "the sweeper (sweep-batches) launches them once they are 30 s old" in out
    assert "Traceback" not in result.output
    [(batch_id, ids)] = _ready(data_dir).items()
    assert batch_id.startswith(f"{PROBE}-") and ids == ["p1", "p2", "p3"]
    # The re-spooled events are the original envelopes.
    spool = Spool(data_dir / "spool")
    [first, *_] = spool.read(spool.path(State.READY, batch_id))
    assert (first.type, first.source, first.occurred, first.received, first.data) == (PROBE, "test", AT, AT, {"n": 0})


def test_replay_by_id(data_dir: Path, dead_letters: DuckDBStore) -> None:
    result = _replay("--id", "u2", "--id", "p1", "--id", "fine", "--id", "unknown")
    assert result.exit_code == 0, result.output
    assert "replayed 2 dead letters as 2 batches: replay_probe 1, user_request 1" in _one_line(result)
    assert sorted(_ready(data_dir).values()) == [["p1"], ["u2"]]


def test_replay_by_time_range_of_the_failure(data_dir: Path, dead_letters: DuckDBStore) -> None:
    result = _replay("--since", "2024-05-01T10:01:00", "--until", "2024-05-01T12:03:00+02:00")
    assert result.exit_code == 0, result.output
    assert "replayed 2 dead letters as 2 batches: replay_probe 1, user_request 1" in _one_line(result)
    assert sorted(_ready(data_dir).values()) == [["p2"], ["u1"]]


def test_replay_chunks_a_type_at_its_batch_size(
    data_dir: Path, dead_letters: DuckDBStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWHOOK_BATCH_OVERRIDES", '{"replay_probe": {"max_events": 2}}')
    get_settings.cache_clear()
    result = _replay()
    assert result.exit_code == 0, result.output
    assert "replayed 5 dead letters as 3 batches: replay_probe 3, user_request 2" in _one_line(result)
    assert sorted(_ready(data_dir).values()) == [["p1", "p2"], ["p3"], ["u1", "u2"]]


def test_a_replayed_batch_is_reprocessed_and_replaces_the_failed_rows(
    data_dir: Path, dead_letters: DuckDBStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.modules[__name__], "BROKEN", {2})  # p1 (n=0) and p3 (n=4) are fixed; p2 (n=2) is not
    assert _replay("--type", PROBE).exit_code == 0
    spool = Spool(data_dir / "spool")
    refs = spool.pending(PROBE, max_events=100)
    handled = steps.handle_all(
        steps.claim_all(spool, refs), catalog=load_catalog(), started=AT, flow_run_id="replay-run"
    )
    steps.store(dead_letters, handled)
    assert dead_letters.query(
        "SELECT id, status, attempts, flow_run_id FROM events WHERE type = ? ORDER BY id", [PROBE]
    ) == [
        ("fine", "ok", 1, "run-1"),
        ("p1", "ok", 1, "replay-run"),
        ("p2", "failed", 1, "replay-run"),
        ("p3", "ok", 1, "replay-run"),
    ]
    assert dead_letters.duplicate_ids() == 0
    assert [letter.event.id for letter in dead_letters.dead_letters()] == ["u1", "u2", "p2"]  # p2 failed last


def test_nothing_to_replay_says_so(data_dir: Path, dead_letters: DuckDBStore) -> None:
    result = _replay("--type", "data_update")
    assert (result.exit_code, _one_line(result)) == (0, "nothing to replay: no dead letters match")
    assert _ready(data_dir) == {}


def test_no_database_yet_is_nothing_to_replay(data_dir: Path) -> None:
    result = _replay()
    assert result.exit_code == 0
    assert _one_line(result).startswith("nothing to replay: no DuckDB file at")


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        (["--since", "yesterday"], "--since 'yesterday' is not an ISO time like 2024-05-01T10:00:00"),
        (["--until", "2024-13-01"], "--until '2024-13-01' is not an ISO time"),
        (["--since", "2024-05-01T11:00:00", "--until", "2024-05-01T10:00:00"], "must be before --until"),
    ],
)
def test_bad_input_is_one_red_sentence(
    data_dir: Path, dead_letters: DuckDBStore, args: list[str], sentence: str
) -> None:
    result = _replay(*args)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert "error:" in result.output and "Traceback" not in result.output
    assert sentence in _one_line(result)
    assert _ready(data_dir) == {}
