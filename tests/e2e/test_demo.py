"""The README's first command, as a user runs it (on free ports and a temporary data folder)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from flowhook.stack import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_demo_stores_everything_it_sent_and_stops_cleanly(repo_root: Path, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "FLOWHOOK_DATA_DIR": str(tmp_path / "data"),
        "FLOWHOOK_GATEWAY_PORT": str(free_port()),
        "COLUMNS": "200",
    }
    env.pop("FLOWHOOK_SQS__QUEUE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "flowhook", "demo", "--events", "300", "--no-keep", "--prefect-port", str(free_port())],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    totals = re.search(r"sent = (\d+), stored = (\d+), duplicates = (\d+)", done.stdout)
    assert totals is not None, done.stdout[-3000:]
    sent, stored, duplicates = map(int, totals.groups())
    assert sent == stored and duplicates == 0
    # Webhooks, SQS messages, files, and the tick the demo starts (plus one if the 5-minute cron fired).
    assert 300 + 30 + 5 + 1 <= sent <= 300 + 30 + 5 + 2
    assert "Traceback" not in done.stdout + done.stderr
    for part in ("gateway", "worker", "moto", "server"):
        assert f"stopping {part}" in done.stdout
