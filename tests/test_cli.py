"""The CLI over a real DuckDB file: report, sql and status, and clear errors instead of tracebacks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flowhook.cli import app
from flowhook.settings import get_settings
from flowhook.store import DuckDBStore, StoredEvent

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("FLOWHOOK_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def _stored(n: int, event_type: str, received: datetime, latency: float) -> StoredEvent:
    return StoredEvent(
        id=f"{event_type}-{n}",
        type=event_type,
        source="test",
        occurred=received,
        received=received,
        emitted=received,
        started=received,
        stored=received + timedelta(seconds=latency),
        batch_id="b",
        flow_run_id=None,
        status="ok",
        error=None,
        data={"n": n},
        result={},
    )


def test_report_json_matches_the_rows_stored(data_dir: Path) -> None:
    start = datetime.now(UTC) - timedelta(seconds=30)
    events = [_stored(i, "user_request", start + timedelta(seconds=i), 1.0) for i in range(10)]
    events += [_stored(i, "data_update", start + timedelta(seconds=2 * i), 1.0) for i in range(5)]
    DuckDBStore(data_dir / "flowhook.duckdb").write_events(events)

    result = runner.invoke(app, ["report", "--minutes", "5", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["event_type"]: row for row in json.loads(result.output)["rows"]}
    # T runs from the first arrival (start) to the last store (start + 9 s + 1 s).
    assert rows["all"]["n"] == 15 and rows["all"]["span_seconds"] == pytest.approx(10.0)
    assert rows["user_request"]["arrival_rate"] == pytest.approx(1.0)
    assert rows["data_update"]["arrival_rate"] == pytest.approx(0.5)
    assert rows["all"]["latency"]["p50"] == pytest.approx(1.0)


def test_sql_prints_rows_and_reports_bad_sql_without_a_traceback(data_dir: Path) -> None:
    DuckDBStore(data_dir / "flowhook.duckdb").write_events([_stored(1, "user_request", datetime.now(UTC), 0.5)])
    ok = runner.invoke(app, ["sql", "SELECT type, count(*) AS n FROM events GROUP BY type"])
    assert ok.exit_code == 0 and "user_request" in ok.output
    bad = runner.invoke(app, ["sql", "SELEC nothing"])
    assert bad.exit_code == 1
    assert "error:" in bad.output and "syntax error" in bad.output and "Traceback" not in bad.output


def test_report_without_a_database_says_so(data_dir: Path) -> None:
    result = runner.invoke(app, ["report"])
    assert result.exit_code == 1
    assert "nothing has been stored yet" in result.output


def test_status_counts_batches_and_events(data_dir: Path) -> None:
    DuckDBStore(data_dir / "flowhook.duckdb").write_events([_stored(1, "data_update", datetime.now(UTC), 0.1)])
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 0
    assert "'data_update': 1" in result.output and "'ready': 0" in result.output
