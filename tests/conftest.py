"""Shared fixtures: the repository root and the real local stack on free ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flowhook.stack import LocalStack, StackConfig, free_port

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """Prefect server (SQLite), process pool, `prefect deploy --all`, worker and gateway, all real."""
    data_dir = tmp_path_factory.mktemp("stack-data")
    config = StackConfig(
        root=ROOT,
        data_dir=data_dir,
        prefect_port=free_port(),
        gateway_port=free_port(),
        local_sqs=True,
        extra_env={
            # The tests start every run they need; a scheduled poller or tick would race them.
            "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
            "FLOWHOOK_SWEEP_AFTER_SECONDS": "5",
            "FLOWHOOK_SOURCES_FILE": str(ROOT / "tests" / "fixtures" / "e2e-sources.yaml"),
        },
    )
    stack = LocalStack(config, progress=lambda message: None)
    with stack:
        yield stack
