"""Errors a command can meet without a bug: one line on stderr, exit 1, nothing on stdout, never a traceback.

The busy store is real: another process holds the DuckDB file (DuckDB admits one read-write process per file)
or flowhook's own lock beside it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner, Result

from flowhook.cli import app
from flowhook.cli._errors import explain, flock_holder
from flowhook.settings import get_settings
from flowhook.store import DuckDBStore
from tests.factories import make_event, stored_event

runner = CliRunner()

RAW_DUCKDB = "import sys, duckdb; con = duckdb.connect(sys.argv[1]); print('held', flush=True); sys.stdin.read()"
"""Another program with the file open read-write, as `duckdb data/flowhook.duckdb` would."""

FLOWHOOK_LOCK = (
    "import sys; from pathlib import Path; from flowhook.store import DuckDBStore\n"
    "with DuckDBStore(Path(sys.argv[1])).connect():\n"
    "    print('held', flush=True); sys.stdin.read()"
)
"""A flowhook process in the middle of a write: it holds the lock file beside the store."""


@contextmanager
def held(path: Path, code: str) -> Iterator[int]:
    """Another process holding the store as `code` does until the block ends (it exits when its stdin closes);
    its pid."""
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield holder.pid
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)


def clean_error(result: Result) -> str:
    """The command's one-line error, after checking it is one: exit 1, stderr only, no traceback."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # typer.Exit, not an escaped exception
    assert result.stdout == ""
    assert "Traceback" not in result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    return result.stderr.strip()


@pytest.fixture
def store(data_dir: Path) -> DuckDBStore:
    store = DuckDBStore(data_dir / "flowhook.duckdb")
    store.write_events([stored_event(make_event(n), batch_id="b1") for n in (1, 2, 3)])
    return store


READS = [
    ["status"],
    ["status", "--json"],
    ["report"],
    ["report", "--json"],
    ["sql", "SELECT count(*) FROM events"],
    ["sql", "SELECT count(*) FROM events", "--json"],
    ["audit"],
    ["audit", "--json"],
    ["replay", "--dry-run"],
]


@pytest.mark.parametrize("args", READS, ids=" ".join)
def test_a_store_another_program_holds_is_named_with_its_pid(store: DuckDBStore, args: list[str]) -> None:
    with held(store.path, RAW_DUCKDB) as pid:
        error = clean_error(runner.invoke(app, args))
    assert error.startswith(f"error: the store at {store.path} is in use by another process (pid {pid}, ")
    assert error.endswith("DuckDB lets one process open it at a time; try again when it is done, or stop it")


def test_a_store_another_flowhook_process_holds_is_named_once_the_wait_is_over(
    store: DuckDBStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWHOOK_LOCK_TIMEOUT_SECONDS", "0.2")
    get_settings.cache_clear()
    with held(store.path, FLOWHOOK_LOCK) as pid:
        error = clean_error(runner.invoke(app, ["status"]))
    who = f"(pid {pid}?)" if Path("/proc/locks").exists() else "process:"
    assert error.startswith(f"error: the store at {store.path} is in use by another process {who}")
    assert "its lock flowhook.duckdb.lock was not free within 0.2 s (FLOWHOOK_LOCK_TIMEOUT_SECONDS)" in error


def test_the_real_command_says_so_too(store: DuckDBStore) -> None:
    """`python -m flowhook` in a process of its own: the sentence on stderr, exit 1, nothing else."""
    env = {**os.environ, "COLUMNS": "80"}
    with held(store.path, RAW_DUCKDB) as pid:
        done = subprocess.run(
            [sys.executable, "-m", "flowhook", "status"], capture_output=True, text=True, env=env, timeout=120
        )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith(f"error: the store at {store.path} is in use by another process (pid {pid}, ")
    assert done.stderr.count("\n") == 1


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="flock holders are read from Linux's /proc/locks")
def test_flock_holder_names_the_process(store: DuckDBStore) -> None:
    assert flock_holder(store.lock_path) is None  # nobody holds it
    with held(store.path, FLOWHOOK_LOCK) as pid:
        assert flock_holder(store.lock_path) == pid
    assert flock_holder(store.path.with_name("missing.lock")) is None


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        (["report", "--bogus"], "error: No such option: --bogus"),
        (["nosuch"], "error: No such command 'nosuch'."),
        (["--bogus"], "error: No such option: --bogus"),
        (["report", "--buckets", "-1"], "error: Invalid value for '--buckets'"),
        (["report", "--minutes", "soon"], "error: Invalid value for '--minutes'"),
        (["sql"], "error: Missing argument 'query'."),
    ],
)
def test_usage_errors_are_one_line_too(data_dir: Path, args: list[str], sentence: str) -> None:
    error = clean_error(runner.invoke(app, args))
    assert error.startswith(sentence)
    assert error.endswith("--help`)")


def test_a_setting_that_does_not_parse(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWHOOK_LOCK_TIMEOUT_SECONDS", "soon")
    get_settings.cache_clear()
    error = clean_error(runner.invoke(app, ["status"]))
    assert error.startswith("error: a setting is not valid: FLOWHOOK_LOCK_TIMEOUT_SECONDS: Input should be a valid")


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        (["report"], "nothing has been stored yet"),
        (["sql", "SELECT 1"], "nothing has been stored yet"),
        (["audit"], "nothing has been stored yet"),
        (["sql", "DELETE FROM events"], "refused (DELETE)"),
        (["replay", "--since", "yesterday"], "--since 'yesterday' is not an ISO time"),
        (["secret", "show", "nobody"], "no source is named 'nobody'"),
        (["quarantine", "replay"], "name quarantine ids, or pass --all"),
    ],
)
def test_errors_of_each_command_go_to_stderr(data_dir: Path, args: list[str], sentence: str) -> None:
    assert sentence in clean_error(runner.invoke(app, args))


def test_a_bug_keeps_its_traceback() -> None:
    """Only expected errors become sentences; anything else must stay visible as what it is."""
    assert explain(RuntimeError("a bug")) is None
    assert explain(KeyError("x")) is None
    assert explain(OSError("no file named")) is None  # an OSError without a file is not the system refusing one
    assert explain(PermissionError(13, "Permission denied", "/data/flowhook.duckdb")) == (
        "Permission denied: /data/flowhook.duckdb"
    )


def test_other_duckdb_io_errors_are_said_as_they_are() -> None:
    assert explain(duckdb.IOException("IO Error: No space left on device")) == (
        "the store failed: IO Error: No space left on device"
    )
    assert explain(duckdb.CatalogException("Catalog Error: Table with name x does not exist!")) is None
