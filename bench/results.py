"""Each full benchmark run's figures, committed as `bench/results/<name>.json` (overwritten by the next full
run), with what they were measured on: machine, versions, commit and date, so a change can be compared with
the last run and the README's figures checked against the file; and another commit's tree (`extracted`), for
benchmarks that run it side by side with this one."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
_PACKAGES = ("prefect", "duckdb", "uvicorn", "httptools", "orjson", "pydantic")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, check=True, cwd=RESULTS.parent
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


@contextlib.contextmanager
def extracted(revision: str, *paths: str) -> Iterator[Path]:
    """`paths` (folders of the repository) as they are at `revision`, extracted with `git archive` into a
    temporary folder; yields that folder, removed at the end."""
    with tempfile.TemporaryDirectory(prefix="flowhook-tree-") as tmp:
        archive = subprocess.run(
            ["git", "-C", str(RESULTS.parent.parent), "archive", revision, *paths], check=True, capture_output=True
        )
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        yield Path(tmp)


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
        "machine": {
            "cpus": os.cpu_count(),
            "cpu_model": _cpu_model(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "platform": platform.platform(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "versions": {"python": platform.python_version(), **{p: _version(p) for p in _PACKAGES}},
    }


def write_results(name: str, figures: dict[str, Any], *, path: Path | None = None) -> Path:
    """Write `bench/results/<name>.json` (or `path`): the environment and `figures`; returns the path."""
    path = path or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"benchmark": name, **environment(), "figures": figures}
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return path
