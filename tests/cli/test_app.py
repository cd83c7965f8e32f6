"""What every command shares: `flowhook --version`, and `--json` on every read command (JSON on stdout, alone)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from flowhook.cli import app
from flowhook.gateway.intake import Delivery
from flowhook.gateway.quarantine import Quarantine, quarantined
from flowhook.settings import get_settings
from flowhook.spool import Spool
from flowhook.store import DuckDBStore
from tests.factories import make_event, stored_event

runner = CliRunner()


def test_version_is_the_package_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"flowhook {version('flowhook')}\n"
    done = subprocess.run([sys.executable, "-m", "flowhook", "--version"], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"flowhook {version('flowhook')}\n", "")


@pytest.fixture
def data(data_dir: Path) -> Path:
    """Something for every read command: stored events of two types, a spooled batch, a quarantined delivery."""
    now = datetime.now(UTC)
    events = [
        make_event(n, event_type).model_copy(update={"received": now - timedelta(seconds=60 - n)})
        for n, event_type in enumerate(["user_request"] * 3 + ["scheduled_tick"])
    ]
    DuckDBStore(data_dir / "flowhook.duckdb").write_events([stored_event(e, batch_id="b1") for e in events])
    Spool(get_settings().spool_dir).write_batch([make_event(9)])
    delivery = Delivery(
        source="signup",
        body=orjson.dumps({"user": {"id": "u7"}}),
        headers={"content-type": "application/json"},
        delivery_id="msg_q1",
        signed_at=now,
    )
    item = quarantined(delivery, received=now, code="template_error", message="The template failed.", errors=[])
    Quarantine(data_dir / "quarantine").put(item)
    return data_dir


READS: list[tuple[list[str], set[str]]] = [
    (["status"], {"spool", "batches", "events", "trigger_path"}),
    (
        ["report", "--minutes", "5"],
        {"report_id", "window_start", "window_end", "span_seconds", "rows", "buckets", "warnings", "definitions"},
    ),
    (["sql", "SELECT type, count(*) AS n FROM events GROUP BY type ORDER BY type"], {"type", "n"}),
    (["quarantine", "list"], {"id", "source", "received", "code", "message", "errors"}),
    (["audit", "--no-save"], {"acknowledged", "missing", "doubled", "missing_ids", "doubled_ids", "spool"}),
]


@pytest.mark.parametrize(("args", "keys"), READS, ids=[args[0] for args, _ in READS])
def test_every_read_command_prints_json_alone(data: Path, args: list[str], keys: set[str]) -> None:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    parsed: Any = json.loads(result.stdout)
    first = parsed[0] if isinstance(parsed, list) else parsed
    assert keys <= set(first), set(first)
    tables = runner.invoke(app, args)  # and tables without --json
    assert tables.exit_code == 0, tables.output
    with pytest.raises(json.JSONDecodeError):
        json.loads(tables.stdout)


def test_the_json_figures(data: Path) -> None:
    def read(*args: str) -> Any:
        result = runner.invoke(app, [*args, "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    assert read("status")["events"] == {"scheduled_tick": 1, "user_request": 3}
    assert read("status")["batches"]["ready"] == 1
    rows = {row["event_type"]: row for row in read("report", "--minutes", "5")["rows"]}
    assert (rows["user_request"]["n"], rows["all"]["n"], rows["all"]["in_flight"]) == (3, 4, 0)
    assert read("sql", "SELECT type, count(*) AS n FROM events GROUP BY type ORDER BY type") == [
        {"type": "scheduled_tick", "n": 1},
        {"type": "user_request", "n": 3},
    ]
    assert [item["delivery_id"] for item in read("quarantine", "list")] == ["msg_q1"]
    assert read("audit", "--no-save")["missing"] == 0


def test_sql_json_writes_what_json_has_no_type_for(data: Path) -> None:
    query = (
        "SELECT TIMESTAMP '2024-05-01 10:00:00' AS at, DATE '2024-05-01' AS day, 1.5 AS decimal, "
        "INTERVAL 90 SECOND AS span, 'x'::BLOB AS blob, [1, 2] AS list, {'a': 1} AS struct, NULL AS nothing"
    )
    result = runner.invoke(app, ["sql", query, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [
        {
            "at": "2024-05-01T10:00:00",
            "day": "2024-05-01",
            "decimal": 1.5,
            "span": "0:01:30",
            "blob": "78",
            "list": [1, 2],
            "struct": {"a": 1},
            "nothing": None,
        }
    ]


def test_sql_json_needs_distinct_column_names(data: Path) -> None:
    result = runner.invoke(app, ["sql", "SELECT 1 AS n, 2 AS n", "--json"])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == "error: --json needs distinct column names, not n, n: name them with AS\n"
