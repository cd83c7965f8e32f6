"""The local stack's environment for its children (the stack itself runs in the e2e tests)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flowhook.stack import LocalStack, StackConfig


def test_flow_runs_find_this_environments_python_without_an_activated_venv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `.venv/bin/flowhook demo` run directly: PATH does not name the venv, yet the worker starts flow
    # runs as `python -m prefect.engine`, which must be this environment's python.
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    env = LocalStack(StackConfig(root=tmp_path, data_dir=tmp_path / "data"), progress=lambda _: None).env()
    python = shutil.which("python", path=env["PATH"])
    assert python is not None and Path(python).parent == Path(sys.executable).parent
    done = subprocess.run(
        ["python", "-c", "import prefect.engine, flowhook"], env=env, capture_output=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
