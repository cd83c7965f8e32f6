"""`flowhook sql` over a real DuckDB file: it reads, and refuses anything that would change the store."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from flowhook.cli import app
from flowhook.settings import get_settings
from flowhook.store import DuckDBStore
from tests.factories import make_event, stored_event

runner = CliRunner()


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DuckDBStore]:
    """Three stored events in a real DuckDB file under FLOWHOOK_DATA_DIR."""
    monkeypatch.setenv("FLOWHOOK_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    store = DuckDBStore(tmp_path / "flowhook.duckdb")
    store.write_events([stored_event(make_event(n), batch_id="b1") for n in (1, 2, 3)])
    yield store
    get_settings.cache_clear()


def _rows(path: Path) -> list[tuple[str, str]]:
    """The events and the tables, read behind flowhook's back."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        events = con.execute("SELECT id, status FROM events ORDER BY id").fetchall()
        tables = con.execute("SELECT table_name, 'table' FROM duckdb_tables() ORDER BY 1").fetchall()
        return events + tables
    finally:
        con.close()


REFUSED = [
    ("DROP TABLE events", "DROP"),
    ("DELETE FROM events", "DELETE"),
    ("INSERT INTO events SELECT * FROM events", "INSERT"),
    ("UPDATE events SET status = 'failed'", "UPDATE"),
    ("CREATE TABLE t AS SELECT 1 AS x", "CREATE"),
    ("CREATE TEMP TABLE t AS SELECT 1 AS x", "CREATE"),
    ("CREATE OR REPLACE VIEW event_latency AS SELECT 1 AS x", "CREATE"),
    ("ALTER TABLE events RENAME TO gone", "ALTER"),
    ("ATTACH '{dir}/other.duckdb' AS other", "ATTACH"),
    ("COPY events TO '{dir}/out.csv'", "COPY"),
    ("EXPORT DATABASE '{dir}/dump'", "EXPORT"),
    ("INSTALL httpfs", "LOAD"),
    ("LOAD httpfs", "LOAD"),
    ("SET threads = 1", "SET"),
    ("PRAGMA threads = 1", "SET"),
    ("CHECKPOINT", "CALL"),
    ("SELECT 1; DROP TABLE events", "DROP"),
    ("SELECT 1; DELETE FROM events", "DELETE"),
    ("EXPLAIN ANALYZE DELETE FROM events", "DELETE"),
    ("BEGIN; DELETE FROM events; COMMIT", "TRANSACTION"),
]


@pytest.mark.parametrize(("statement", "kind"), REFUSED, ids=[s for s, _ in REFUSED])
def test_a_statement_that_would_change_anything_is_refused_and_changes_nothing(
    store: DuckDBStore, tmp_path: Path, statement: str, kind: str
) -> None:
    before = _rows(store.path)
    result = runner.invoke(app, ["sql", statement.format(dir=tmp_path)])

    assert result.exit_code == 1, result.output
    assert result.stdout == ""  # the error is on stderr, on one line, without a traceback
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: refused ({kind}): `flowhook sql` only reads")
    assert _rows(store.path) == before
    assert not {"other.duckdb", "out.csv", "dump"} & {p.name for p in tmp_path.iterdir()}


def test_two_reads_at_once_are_refused_too(store: DuckDBStore) -> None:
    result = runner.invoke(app, ["sql", "SELECT 1; SELECT 2"])
    assert result.exit_code == 1
    assert result.stderr == "error: refused (2 statements): `flowhook sql` runs one statement at a time\n"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("SELECT id FROM events ORDER BY id", ["e1", "e2", "e3"]),
        ("WITH n AS (SELECT count(*) AS stored FROM events) SELECT stored FROM n", ["stored", "3"]),
        ("FROM events SELECT max(id) AS newest", ["newest", "e3"]),
        ("DESCRIBE events", ["batch_id", "VARCHAR"]),
        ("SHOW TABLES", ["events", "reports", "event_latency"]),
        ("PRAGMA table_info('events')", ["attempts", "INTEGER"]),
        ("SUMMARIZE SELECT id FROM events", ["min", "max"]),
        ("EXPLAIN SELECT count(*) FROM events", ["physical_plan"]),
        ("EXPLAIN ANALYZE SELECT count(*) FROM events", ["analyzed_plan"]),
    ],
)
def test_reads_work(store: DuckDBStore, query: str, expected: list[str]) -> None:
    result = runner.invoke(app, ["sql", query])
    assert result.exit_code == 0, result.output
    for text in expected:
        assert text in result.stdout


def test_a_write_slipped_past_the_parser_check_is_refused_by_the_read_only_open(store: DuckDBStore) -> None:
    """The second guard on its own: the connection `sql` uses cannot write, whatever is run on it."""
    with store.read_only() as con:
        for statement in ("DROP TABLE events", "DELETE FROM events", "COPY events TO 'x.csv'", "ATTACH 'x.db'"):
            with pytest.raises(duckdb.Error):
                con.execute(statement)
    assert store.count_events() == 3
    assert not Path("x.csv").exists() and not Path("x.db").exists()


def test_the_lock_is_released_as_soon_as_the_query_is_done(store: DuckDBStore) -> None:
    result = runner.invoke(app, ["sql", "SELECT count(*) AS n FROM events"])
    assert result.exit_code == 0, result.output
    fd = os.open(store.lock_path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises BlockingIOError if anything still held it
    finally:
        os.close(fd)
    assert store.write_events([stored_event(make_event(4), batch_id="b2")]) == 1
