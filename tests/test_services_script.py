"""scripts/test-services.sh, what `make test` runs first: idempotent where all is there, and a clear refusal
(exit 1, on stderr, naming what is missing) where something must be installed without the rights to."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "test-services.sh"


def _run(env: dict[str, str], user: str | None = None) -> subprocess.CompletedProcess[str]:
    argv = ["bash", str(SCRIPT)]
    if user is not None:
        argv = ["su", user, "-s", "/bin/bash", "-c", f"bash {SCRIPT}"]
    return subprocess.run(argv, env={**os.environ, **env}, capture_output=True, text=True, timeout=120)


def test_a_second_run_finds_everything_running_and_changes_nothing() -> None:
    result = _run({})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(":")[1].strip() for line in lines] == ["PostgreSQL", "Redis", "Chromium"]
    assert "installing" not in result.stdout and "starting" not in result.stdout


@pytest.mark.skipif(os.getuid() != 0 or shutil.which("su") is None, reason="needs root to run as another user")
def test_without_root_a_missing_package_is_named_not_installed(tmp_path: Path) -> None:
    user = pwd.getpwnam("nobody").pw_name
    missing = tmp_path / "no-chromium"
    tmp_path.chmod(0o755)
    result = _run({"FLOWHOOK_CHROMIUM": str(missing)}, user=user)
    assert result.returncode == 1
    assert "chromium missing: installing needs root" in result.stderr
    assert "apt-get install chromium" in result.stderr
    assert "Traceback" not in result.stderr
