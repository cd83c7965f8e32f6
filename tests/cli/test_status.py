"""`flowhook status` and `status --check` over a real DuckDB file: the trigger path's heartbeat line and exit codes;
`flowhook report` carrying the same check."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from flowhook.cli import app
from flowhook.settings import get_settings
from flowhook.store import DuckDBStore, StoredEvent
from flowhook.uptime import started_at

runner = CliRunner()


def _closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port: int = listener.getsockname()[1]
        return port


CLOSED_API = f"http://127.0.0.1:{_closed_port()}/api"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("FLOWHOOK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FLOWHOOK_PREFECT_API_URL", CLOSED_API)  # no Prefect here: its part of status says so
    monkeypatch.delenv("FLOWHOOK_HEARTBEAT_MAX_AGE_SECONDS", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def _tick(data_dir: Path, *, stored_ago: float, end_to_end: float = 3.0, source: str = "schedule") -> None:
    stored = datetime.now(UTC) - timedelta(seconds=stored_ago)
    occurred = stored - timedelta(seconds=end_to_end)
    DuckDBStore(data_dir / "flowhook.duckdb").write_events(
        [
            StoredEvent(
                id=f"every-5-minutes@{occurred.isoformat()}",
                type="scheduled_tick",
                source=source,
                occurred=occurred,
                received=occurred + timedelta(seconds=0.1),
                emitted=None,
                started=None,
                stored=stored,
                batch_id="b",
                flow_run_id=None,
                status="ok",
                error=None,
                data={},
                result={},
            )
        ]
    )


def _stack_marker(data_dir: Path, *, up_for: float, pid: int | None = None) -> None:
    started = datetime.now(UTC).timestamp() - up_for
    (data_dir / "stack.json").write_text(json.dumps({"started": started, "pid": pid or os.getpid()}))


def _line(result: Result) -> str:
    """The trigger path line, with Rich's wrapping undone."""
    flat = " ".join(result.output.split())
    assert "trigger path: " in flat, result.output
    return flat[flat.index("trigger path: ") :]


def _line_with(result: Result, start: str) -> str:
    flat = " ".join(result.output.split())
    return flat[flat.index(start) :]


def test_a_fresh_heartbeat_is_healthy_and_the_counts_stay(data_dir: Path) -> None:
    _tick(data_dir, stored_ago=42, end_to_end=3.1)
    for args in (["status"], ["status", "--check"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        lines = [line.split() for line in result.stdout.splitlines()]
        assert ["open", "ready", "sent", "claimed", "done"] in lines and ["0", "0", "0", "0", "0"] in lines
        assert ["scheduled_tick", "1"] in lines and ["all", "1"] in lines
        # The clock moves on between writing and reading: a few seconds of slack.
        assert re.fullmatch(
            r"trigger path: healthy — last heartbeat stored 4[2-6] s ago, 3.1 s after it was sent", _line(result)
        )


def test_a_stale_heartbeat_is_unhealthy_and_only_check_exits_1(data_dir: Path) -> None:
    _tick(data_dir, stored_ago=14 * 60)
    plain = runner.invoke(app, ["status"])
    assert plain.exit_code == 0, plain.output
    assert _line(plain) == (
        "trigger path: UNHEALTHY — no heartbeat stored for 14 min (max 11 min): "
        "a trigger, the worker or the Prefect server may be down"
    )
    check = runner.invoke(app, ["status", "--check"])
    assert check.exit_code == 1
    assert isinstance(check.exception, SystemExit) and "Traceback" not in check.output
    assert "UNHEALTHY" in check.output


def test_the_max_age_setting_is_used(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tick(data_dir, stored_ago=120)
    assert runner.invoke(app, ["status", "--check"]).exit_code == 0
    monkeypatch.setenv("FLOWHOOK_HEARTBEAT_MAX_AGE_SECONDS", "60")
    get_settings.cache_clear()
    result = runner.invoke(app, ["status", "--check"])
    assert result.exit_code == 1
    assert "(max 60 s)" in _line(result)


def test_a_tick_someone_emitted_by_hand_is_no_heartbeat(data_dir: Path) -> None:
    _tick(data_dir, stored_ago=5, source="emit")
    result = runner.invoke(app, ["status", "--check"])
    assert result.exit_code == 0  # unknown, not unhealthy
    assert _line(result) == "trigger path: unknown — no heartbeat stored yet"


def test_no_file_and_no_stack_is_unknown_not_unhealthy(data_dir: Path) -> None:
    result = runner.invoke(app, ["status", "--check"])
    assert result.exit_code == 0, result.output
    assert "no events stored yet: no DuckDB file at" in _line_with(result, "no events")  # no file: no counts
    assert _line(result) == "trigger path: unknown — no heartbeat stored yet"


def test_never_seen_on_a_stack_up_longer_than_max_age_is_unhealthy(data_dir: Path) -> None:
    _stack_marker(data_dir, up_for=20 * 60)
    result = runner.invoke(app, ["status", "--check"])
    assert result.exit_code == 1
    assert _line(result).startswith(
        "trigger path: UNHEALTHY — no heartbeat ever stored, and the stack has been up for 20 min (max 11 min)"
    )
    _stack_marker(data_dir, up_for=60)
    young = runner.invoke(app, ["status", "--check"])
    assert young.exit_code == 0
    assert "unknown — no heartbeat stored yet (the stack has been up for" in _line(young)


def test_the_stack_marker_of_a_dead_process_or_garbage_is_ignored(data_dir: Path) -> None:
    assert started_at(data_dir) is None
    _stack_marker(data_dir, up_for=60)
    assert started_at(data_dir) is not None
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    _stack_marker(data_dir, up_for=20 * 60, pid=int(done.stdout))  # that process has exited
    assert started_at(data_dir) is None
    assert runner.invoke(app, ["status", "--check"]).exit_code == 0
    (data_dir / "stack.json").write_text("{not json")
    assert started_at(data_dir) is None


def test_the_report_warns_when_the_trigger_path_is_unhealthy(data_dir: Path) -> None:
    _tick(data_dir, stored_ago=30 * 60)
    result = runner.invoke(app, ["report", "--minutes", "60", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["heartbeat"]["status"] == "unhealthy"
    assert report["heartbeat"]["age_seconds"] == pytest.approx(30 * 60, abs=30)
    assert report["warnings"][0].startswith("Trigger path UNHEALTHY — no heartbeat stored for 30 min (max 11 min)")
    table = runner.invoke(app, ["report", "--minutes", "60"])
    assert table.exit_code == 0
    assert "Trigger path UNHEALTHY — no heartbeat stored for 30 min" in " ".join(table.output.split())


def test_the_report_is_quiet_about_a_healthy_trigger_path(data_dir: Path) -> None:
    _tick(data_dir, stored_ago=10)
    report = json.loads(runner.invoke(app, ["report", "--minutes", "60", "--json"]).output)
    assert report["heartbeat"]["status"] == "healthy"
    assert not any("Trigger path" in note for note in report["warnings"])


def test_status_json_has_the_counts_and_the_heartbeat(data_dir: Path) -> None:
    _tick(data_dir, stored_ago=14 * 60)
    result = runner.invoke(app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.stdout)
    assert set(status) == {"spool", "batches", "events", "types", "prefect", "trigger_path"}
    assert status["spool"] == str(data_dir / "spool")
    assert status["batches"] == {"open": 0, "ready": 0, "sent": 0, "claimed": 0, "done": 0}
    assert status["events"] == {"scheduled_tick": 1}
    assert status["trigger_path"]["status"] == "unhealthy"
    assert status["trigger_path"]["age_seconds"] == pytest.approx(14 * 60, abs=30)
    check = runner.invoke(app, ["status", "--json", "--check"])  # still JSON, and exit 1
    assert check.exit_code == 1
    assert json.loads(check.stdout)["trigger_path"]["healthy"] is False


def test_status_json_without_a_store_says_null(data_dir: Path) -> None:
    result = runner.invoke(app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.stdout)
    assert status["events"] is None and status["trigger_path"]["status"] == "unknown"


def test_status_without_prefect_says_the_deployments_are_unknown_and_goes_on(data_dir: Path) -> None:
    """Each type's deployment is read from Prefect (tests/deployments/test_agreement.py, with a server); without one
    the rest of status is shown, and why the deployments are not."""
    result = runner.invoke(app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.stdout)
    assert status["types"] is None
    assert status["prefect"]["api_url"] == CLOSED_API and status["prefect"]["error"].startswith("ConnectError")
    text = runner.invoke(app, ["status"], env={"COLUMNS": "200"})
    assert text.exit_code == 0, text.output
    assert f"event types and their deployments at {CLOSED_API}" in text.stdout
    assert "unknown: ConnectError" in text.stdout
