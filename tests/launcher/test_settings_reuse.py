"""A forked run keeps the template's Prefect settings only when they are what it would build itself: the
same PREFECT_* variables, settings files and profiles file (launcher.template.settings_sources)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.settings import Settings

from flowhook.launcher.starter import engine_environment, template_environment
from flowhook.launcher.template import settings_sources

ROOT = Path(__file__).resolve().parents[2]


def test_the_engines_per_run_variables_are_no_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Why PREFECT__* may differ between the template and a run: no Prefect setting reads them."""
    before = Settings().model_dump()
    for name in ("FLOW_RUN_ID", "CONTROL_PORT", "CONTROL_TOKEN", "DEPLOYMENT_NAME", "FLOW_ENTRYPOINT"):
        monkeypatch.setenv(f"PREFECT__{name}", "x")
    assert Settings().model_dump() == before


def test_what_settings_are_built_from_changes_with_a_setting_or_a_settings_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    first = settings_sources()
    monkeypatch.setenv("PREFECT__FLOW_RUN_ID", "a-run")
    assert settings_sources() == first
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    changed = settings_sources()
    assert changed != first
    (tmp_path / ".env").write_text("PREFECT_LOGGING_LEVEL=DEBUG\n")
    assert settings_sources() != changed


PROBE = """
import json, os, sys
from flowhook.launcher import template
if sys.argv[1] == "template":
    print(json.dumps(template.settings_as_a_run_reads_them()))
else:
    os.chdir(sys.argv[2])
    print(json.dumps(template.settings_sources()))
"""


def _sources(env: dict[str, str], *args: str) -> object:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.timeout(240)
def test_a_run_of_a_job_without_prefect_variables_keeps_the_templates_settings(tmp_path: Path) -> None:
    """The worker starts its template with `template_environment()` and each run with `engine_environment`,
    in a new empty folder: for a job that sets no PREFECT_* variable, both are built from the same sources."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "home")}
    job = {"PREFECT__DEPLOYMENT_NAME": "process-batch/user_request", "FLOWHOOK_DRAIN__IDLE_SECONDS": "3"}
    control = {"PREFECT__CONTROL_PORT": "1", "PREFECT__CONTROL_TOKEN": "t"}
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        template_env = template_environment()
        run_env = engine_environment("a-run", job_env=dict(job), control_env=control)
        other_env = engine_environment("a-run", job_env={**job, "PREFECT_LOGGING_LEVEL": "ERROR"}, control_env=control)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    template = _sources(template_env, "template")
    assert _sources(run_env, "run", str(run_dir)) == template
    assert _sources(other_env, "run", str(run_dir)) != template
