"""`flowhook sql --format table|csv|json|parquet --output PATH` over a real store, read back with DuckDB."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from flowhook.cli import app
from flowhook.events import load_catalog
from flowhook.settings import get_settings
from flowhook.spool import BatchRef
from flowhook.store import DuckDBStore
from flowhook.worker import steps
from tests.factories import T0, make_event

runner = CliRunner()
QUERY = "SELECT event_id, stored, action, priority, amount FROM results_user_request ORDER BY event_id"
STORED = (T0 + timedelta(seconds=5)).replace(tzinfo=None)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DuckDBStore]:
    """Two user requests handled and stored in a real DuckDB file under FLOWHOOK_DATA_DIR."""
    monkeypatch.setenv("FLOWHOOK_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    store = DuckDBStore(tmp_path / "flowhook.duckdb")
    events = [
        make_event(1, data={"user_id": "u1", "action": "checkout", "amount_cents": 1999}),
        make_event(2, data={"user_id": "u2", "action": "search"}),
    ]
    batch = BatchRef(batch_id="b1", event_type="user_request", count=2, sealed=T0)
    handled = steps.handle(events, catalog=load_catalog(), batch=batch, started=T0, flow_run_id=None)
    steps.store(store, handled, now=T0 + timedelta(seconds=5))
    yield store
    get_settings.cache_clear()


def test_the_table_shows_the_typed_view(store: DuckDBStore) -> None:
    result = runner.invoke(app, ["sql", QUERY])
    assert result.exit_code == 0, result.output
    assert "checkout" in result.stdout and "19.99" in result.stdout and "normal" in result.stdout


def test_csv_on_stdout_and_in_a_file(store: DuckDBStore, tmp_path: Path) -> None:
    result = runner.invoke(app, ["sql", QUERY, "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows == [
        ["event_id", "stored", "action", "priority", "amount"],
        ["e1", str(STORED), "checkout", "high", "19.99"],
        ["e2", str(STORED), "search", "normal", "0.0"],
    ]
    out = tmp_path / "out" / "rows.csv"
    out.parent.mkdir()
    assert runner.invoke(app, ["sql", QUERY, "--format", "csv", "--output", str(out)]).exit_code == 0
    assert out.read_text() == result.stdout
    read = duckdb.sql(f"SELECT event_id, amount FROM read_csv('{out}') ORDER BY 1").fetchall()
    assert read == [("e1", 19.99), ("e2", 0.0)]


def test_json_is_the_same_with_format_json_and_the_json_alias(store: DuckDBStore, tmp_path: Path) -> None:
    by_format = runner.invoke(app, ["sql", QUERY, "--format", "json"])
    by_alias = runner.invoke(app, ["sql", QUERY, "--json"])
    assert by_format.exit_code == by_alias.exit_code == 0, by_format.output
    assert by_format.stdout == by_alias.stdout
    expected = [
        {"event_id": "e1", "stored": STORED.isoformat(), "action": "checkout", "priority": "high", "amount": 19.99},
        {"event_id": "e2", "stored": STORED.isoformat(), "action": "search", "priority": "normal", "amount": 0.0},
    ]
    assert json.loads(by_format.stdout) == expected
    out = tmp_path / "rows.json"
    assert runner.invoke(app, ["sql", QUERY, "--format", "json", "--output", str(out)]).exit_code == 0
    assert json.loads(out.read_text()) == expected


def test_parquet_round_trips_with_its_types(store: DuckDBStore, tmp_path: Path) -> None:
    out = tmp_path / "rows.parquet"
    result = runner.invoke(app, ["sql", QUERY, "--format", "parquet", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    con = duckdb.connect()
    try:
        rows = con.execute(f"SELECT * FROM read_parquet('{out}') ORDER BY event_id").fetchall()
        types = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{out}')").fetchall()
    finally:
        con.close()
    assert rows == [("e1", STORED, "checkout", "high", 19.99), ("e2", STORED, "search", "normal", 0.0)]
    assert [(column, kind) for column, kind, *_ in types] == [
        ("event_id", "VARCHAR"),
        ("stored", "TIMESTAMP"),
        ("action", "VARCHAR"),
        ("priority", "VARCHAR"),
        ("amount", "DOUBLE"),
    ]


def test_the_format_follows_from_the_outputs_suffix(store: DuckDBStore, tmp_path: Path) -> None:
    out = tmp_path / "rows.parquet"
    assert runner.invoke(app, ["sql", QUERY, "--output", str(out)]).exit_code == 0
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{out}')").fetchall() == [(2,)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "parquet"], "error: --format parquet writes a binary file: give it --output PATH\n"),
        (["--format", "csv", "--json"], "error: --json is --format json: give one of --json and --format csv\n"),
        (["--format", "table", "--output", "x.csv"], "error: --output writes csv, json or parquet: give --format"),
        (["--output", "rows.txt"], "error: --output rows.txt: give --format csv, json or parquet"),
        (["--format", "xml"], "error: Invalid value for '--format'"),
    ],
)
def test_a_format_that_cannot_be_written_fails_cleanly(
    store: DuckDBStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["sql", QUERY, *args])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
    assert not [p for p in tmp_path.iterdir() if p.suffix in {".csv", ".txt", ".parquet"}]


def test_a_writing_query_is_refused_whatever_the_format(store: DuckDBStore, tmp_path: Path) -> None:
    out = tmp_path / "rows.csv"
    result = runner.invoke(app, ["sql", "DELETE FROM events", "--format", "csv", "--output", str(out)])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: refused (DELETE)")
    assert not out.exists()
    assert store.count_events() == 2
