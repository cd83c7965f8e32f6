"""The warm template as real processes: forks, exit statuses, SIGKILL, a broken event module, a project
that fails to import, and replacement when the code changes. No Prefect server: the forked engine is
pointed at a socket that never answers, or given no flow run, so its fate is known."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowhook.launcher.templates import TemplateError, TemplateProcess, Templates
from tests.figures import FIGURES
from tests.launcher.conftest import parent_pid, until

ROOT = Path(__file__).resolve().parents[2]
LOG = logging.getLogger("tests.launcher")

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def silent_api() -> Iterator[str]:
    """A Prefect API URL on 127.0.0.1 that accepts connections and never answers: a run waits on it."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield f"http://127.0.0.1:{server.getsockname()[1]}/api"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "PREFECT_HOME": str(tmp_path / "p"), **extra}


def _private_mb(pid: int) -> float:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:])
    kb = sum(int(fields[k].split()[0]) for k in ("Private_Dirty", "Private_Clean"))
    return kb / 1024


def test_a_forked_child_runs_the_engine_in_its_own_session_and_its_exit_status_comes_back(
    tmp_path: Path, silent_api: str
) -> None:
    templates = Templates(root=ROOT, event_modules=[], logger=LOG)

    async def scenario() -> tuple[int, int, int, float, int]:
        template = await templates.get()
        loop = asyncio.get_running_loop()
        # No flow run id: Prefect's engine logs it and exits 1.
        bad = template.fork(_env(tmp_path, PREFECT__FLOW_RUN_ID="not-a-run"), str(tmp_path), loop)
        await bad.wait_forked(10)
        bad_code = await asyncio.wait_for(bad.wait(), 60)
        # A run whose API never answers: alive until killed.
        env = _env(tmp_path, PREFECT__FLOW_RUN_ID=str(uuid.uuid4()), PREFECT_API_URL=silent_api)
        started = time.monotonic()
        hung = template.fork(env, str(tmp_path), loop)
        pid = await hung.wait_forked(10)
        fork_ms = (time.monotonic() - started) * 1000
        await asyncio.sleep(1.0)  # let it get as far as the API call
        assert hung.returncode is None
        session, parent = os.getsid(pid), parent_pid(pid)
        FIGURES.append(f"launcher: fork answered in {fork_ms:.0f} ms; child private memory {_private_mb(pid):.0f} MB")
        assert Path(f"/proc/{pid}/cwd").resolve() == tmp_path.resolve()
        os.kill(pid, signal.SIGKILL)
        killed = await asyncio.wait_for(hung.wait(), 30)
        return bad_code, session == pid, parent, fork_ms, killed

    try:
        bad_code, own_session, parent, _, killed = asyncio.run(scenario())
        assert templates.current is not None
        assert parent == templates.current.pid  # a child of the template, not of this process
    finally:
        templates.close()
    assert bad_code == 1
    assert own_session
    assert killed == -signal.SIGKILL


def test_a_broken_event_module_is_reported_and_the_template_still_forks(tmp_path: Path) -> None:
    (tmp_path / "broken_events.py").write_text("raise RuntimeError('this module is broken on purpose')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    template = TemplateProcess(
        [sys.executable, "-m", "flowhook.launcher.template", "broken_events"],
        cwd=ROOT,
        env=env,
        code_fingerprint="x",
    )
    try:
        template.wait_ready(90)
        [warning] = template.warnings
        assert "broken_events" in warning and "this module is broken on purpose" in warning
        assert template.alive
    finally:
        template.retire()
    until(lambda: not template.running, 30)


def test_a_project_that_fails_to_import_gives_its_error_and_is_not_retried_at_once(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "broken_flow.py").write_text("import this_module_does_not_exist\n")
    templates = Templates(root=tmp_path, event_modules=[], logger=LOG, retry_after=60)

    async def twice() -> tuple[str, float]:
        with pytest.raises(TemplateError) as first:
            await templates.get()
        started = time.monotonic()
        with pytest.raises(TemplateError) as second:
            await templates.get()
        assert str(second.value) == str(first.value)
        return str(first.value), time.monotonic() - started

    try:
        message, again = asyncio.run(twice())
    finally:
        templates.close()
    assert "failed to import the project" in message and "this_module_does_not_exist" in message
    assert again < 0.5  # the same code: the error at once, no new template


def test_the_template_is_replaced_when_the_code_changes_and_the_old_one_exits(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    probe = tmp_path / "flows" / "probe.py"
    probe.write_text("VERSION = 1\n")
    templates = Templates(root=tmp_path, event_modules=[], logger=LOG)

    async def scenario() -> tuple[TemplateProcess, TemplateProcess, TemplateProcess]:
        first = await templates.get()
        same = await templates.get()
        probe.write_text("VERSION = 22\n")
        return first, same, await templates.get()

    try:
        first, same, second = asyncio.run(scenario())
        assert same is first
        assert second is not first and second.alive
        until(lambda: not first.running, 30)  # retired with no children: it exits
        assert templates.replaced == 1
    finally:
        templates.close()


def test_the_runs_own_logging_settings_reach_the_forked_child(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The template configured logging from its own environment; a run whose environment says otherwise gets
    its own (the engine logs an invalid flow run id at ERROR: shown by default, not at CRITICAL)."""
    templates = Templates(root=ROOT, event_modules=[], logger=LOG)

    async def run(**env: str) -> int:
        template = await templates.get()
        child = template.fork(
            _env(tmp_path, PREFECT__FLOW_RUN_ID="not-a-run", **env), str(tmp_path), asyncio.get_running_loop()
        )
        await child.wait_forked(10)
        return await asyncio.wait_for(child.wait(), 60)

    async def both() -> tuple[int, str, int, str]:
        default = await run()
        shown = capfd.readouterr().err
        quiet = await run(PREFECT_LOGGING_LEVEL="CRITICAL")
        return default, shown, quiet, capfd.readouterr().err

    try:
        default, shown, quiet, hidden = asyncio.run(both())
    finally:
        templates.close()
    assert default == quiet == 1
    assert "Invalid flow run id" in shown
    assert "Invalid flow run id" not in hidden
