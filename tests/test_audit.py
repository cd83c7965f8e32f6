"""The audit over a real spool folder and a real DuckDB file: rows lost or doubled behind the store's back are
named, honest data is clean, and the sweeper's periodic audit reaches the report as a warning."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from flowhook.audit import latest_audit, run_audit
from flowhook.cli import app
from flowhook.metrics import Window, to_json_dict
from flowhook.reporting import window_report
from flowhook.settings import get_settings
from flowhook.spool import Spool, State
from flowhook.store import DuckDBStore
from tasks.sweep import audit_store
from tests.factories import make_event, stored_event
from tests.figures import report as report_figure

runner = CliRunner()


@pytest.fixture
def spool(data_dir: Path) -> Spool:
    return Spool(data_dir / "spool")


@pytest.fixture
def store(data_dir: Path) -> DuckDBStore:
    return DuckDBStore(data_dir / "flowhook.duckdb")


def process(spool: Spool, store: DuckDBStore, numbers: range, *, complete: bool = True) -> str:
    """One batch through the worker's steps: written, claimed, stored, and (with `complete`) marked done."""
    batch_id = spool.write_batch([make_event(n) for n in numbers]).batch_id
    events = spool.claim_events(batch_id, owner="run")
    assert events is not None
    store.write_events([stored_event(event, batch_id=batch_id) for event in events])
    if complete:
        spool.complete(batch_id)
    return batch_id


def behind_its_back(store: DuckDBStore, sql: str) -> None:
    """A raw connection, as a crash's recovery or a stray tool would change the file: no flowhook code."""
    con = duckdb.connect(str(store.path))
    try:
        con.execute(sql)
    finally:
        con.close()


def test_honest_data_gives_a_clean_audit_and_batches_in_flight_are_not_expected(
    spool: Spool, store: DuckDBStore
) -> None:
    process(spool, store, range(0, 10))
    process(spool, store, range(10, 15))
    process(spool, store, range(15, 20), complete=False)  # claimed and stored, not yet marked done
    spool.write_batch([make_event(n) for n in range(20, 25)])  # ready: not stored yet
    redelivered = process(spool, store, range(5, 12))  # ids of earlier batches again: stored once

    found = run_audit(store, spool)

    assert (found.done_batches, found.acknowledged) == (3, 15)
    assert found.clean and (found.missing, found.doubled) == (0, 0)
    assert found.warning() is None
    assert spool.state_of(redelivered) is State.DONE
    result = runner.invoke(app, ["audit"])
    assert result.exit_code == 0, result.output
    assert "audited 15 acknowledged events in 3 done batches" in result.stdout and "0 missing" in result.stdout


def test_a_row_deleted_behind_the_stores_back_is_named_with_its_batch(spool: Spool, store: DuckDBStore) -> None:
    first = process(spool, store, range(0, 10))
    second = process(spool, store, range(10, 20))
    behind_its_back(store, "DELETE FROM events WHERE id IN ('e3', 'e17')")

    found = run_audit(store, spool)

    assert (found.missing, found.doubled) == (2, 0)
    assert sorted(found.missing_ids) == [("e17", second), ("e3", first)]
    result = runner.invoke(app, ["audit", "--json"])
    assert result.exit_code == 1  # for scripts
    finding = json.loads(result.stdout)
    assert (finding["missing"], finding["acknowledged"]) == (2, 20)
    assert sorted(finding["missing_ids"]) == [["e17", second], ["e3", first]]
    table = runner.invoke(app, ["audit"])
    assert table.exit_code == 1
    assert "2 missing" in table.stdout and "e3" in table.stdout and "e17" in table.stdout


def test_a_torn_last_line_of_a_done_batch_was_never_acknowledged(spool: Spool, store: DuckDBStore) -> None:
    batch_id = process(spool, store, range(0, 3))
    with spool.path(State.DONE, batch_id).open("ab") as fh:
        fh.write(b'{"id": "e99", "type": "user_req')  # a write the gateway never acknowledged
    assert run_audit(store, spool).clean


def test_a_row_stored_twice_behind_the_stores_back_is_named(spool: Spool, store: DuckDBStore) -> None:
    # `events` has no key (see store/schema.py): writes skip stored ids under the write lock, so only a writer
    # that bypasses the lock (a raw connection, a copy merged in from another store) can double a row.
    process(spool, store, range(0, 10))
    behind_its_back(store, "INSERT INTO events SELECT * FROM events WHERE id = 'e4'")

    found = run_audit(store, spool)

    assert (found.missing, found.doubled) == (0, 1)
    assert found.doubled_ids == [("e4", 2)]
    assert "1 events are stored more than once" in (found.warning() or "")
    assert runner.invoke(app, ["audit", "--no-save"]).exit_code == 1


def test_the_sweepers_audit_is_saved_and_the_report_warns_of_it(
    spool: Spool, store: DuckDBStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    process(spool, store, range(0, 10))
    behind_its_back(store, "DELETE FROM events WHERE id = 'e7'")

    found = audit_store.fn()

    assert found is not None and found.missing_ids[0][0] == "e7"
    assert audit_store.fn() is None  # the next sweep, within the interval, leaves the store alone
    saved = latest_audit(store)
    assert saved is not None and (saved.missing, saved.missing_ids) == (1, found.missing_ids)
    now = datetime.now(UTC)
    result = window_report(store, spool, Window(now - timedelta(hours=1), now, 60.0), target_p99_seconds=30.0)
    warnings = to_json_dict(result)["warnings"]
    assert [w for w in warnings if "Audit at" in w] == [found.warning()]
    assert "1 acknowledged events are missing from the store" in (found.warning() or "")
    cli = runner.invoke(app, ["report", "--json"])
    assert cli.exit_code == 0, cli.output
    assert found.warning() in json.loads(cli.stdout)["warnings"]

    monkeypatch.setenv("FLOWHOOK_AUDIT_INTERVAL_MINUTES", "0")
    get_settings.cache_clear()
    store.write_events([stored_event(make_event(7), batch_id="repair")])  # put back: the next audit is clean
    assert (clean := audit_store.fn()) is not None and clean.clean
    later = window_report(store, spool, Window(now - timedelta(hours=1), now, 60.0), target_p99_seconds=30.0)
    assert not [w for w in to_json_dict(later)["warnings"] if "Audit at" in w]


def test_sixty_thousand_acknowledged_events_are_compared_in_duckdb(spool: Spool, store: DuckDBStore) -> None:
    for start in range(0, 60_000, 5_000):
        process(spool, store, range(start, start + 5_000))
    behind_its_back(store, "DELETE FROM events WHERE id = 'e41234'")

    began = time.perf_counter()
    found = run_audit(store, spool)
    seconds = time.perf_counter() - began

    assert (found.acknowledged, found.done_batches, found.missing) == (60_000, 12, 1)
    assert found.missing_ids[0][0] == "e41234"
    report_figure(f"audit: 60,000 acknowledged events in 12 done batches against DuckDB in {seconds:.2f} s")
    assert seconds < 10
