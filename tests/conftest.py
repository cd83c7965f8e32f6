"""Shared fixtures: the repository root and the real local stack on free ports."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flowhook.settings import get_settings
from flowhook.stack import LocalStack, StackConfig, free_port
from tests.figures import FIGURES

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """The gateway's overload admission refuses deliveries while its event loop runs 0.05 s late: on a CI machine
    at load average 8 that happens without any overload, and a test that checks every delivery is acknowledged
    would fail for it. Tests run with a 2 s lag target (gateways in this process and those the stacks start);
    tests/gateway/test_overload.py and test_admission.py test admission with their own limits."""
    os.environ.setdefault("FLOWHOOK_INGRESS__MAX_LOOP_LAG_SECONDS", "2.0")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


def e2e_stack_config(data_dir: Path, *, extra_env: dict[str, str] | None = None, **changes: Any) -> StackConfig:
    """The end-to-end tests' stack on free ports: no scheduler (the tests start every run they need; a
    scheduled poller or tick would race them) and the tests' sources; `extra_env` and `changes` on top."""
    env = {
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
        "FLOWHOOK_SOURCES_FILE": str(ROOT / "tests" / "fixtures" / "e2e-sources.yaml"),
        **(extra_env or {}),
    }
    return StackConfig(
        root=ROOT, data_dir=data_dir, prefect_port=free_port(), gateway_port=free_port(), extra_env=env, **changes
    )


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """`tmp_path` as FLOWHOOK_DATA_DIR, with the cached settings read afresh before and after."""
    monkeypatch.setenv("FLOWHOOK_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


@pytest.fixture
def declare_types(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], str]]:
    """Write a module of event types under `tmp_path` (put on sys.path) and return its name for
    FLOWHOOK_EVENT_MODULES; the types it registers and the module are forgotten after the test."""
    import flowhook.events.builtin  # noqa: F401  registered before the registry is copied, so they stay
    from flowhook.events import registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry.registered()))
    folder = tmp_path / "event_modules"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    written: list[str] = []

    def declare(name: str, source: str) -> str:
        (folder / f"{name}.py").write_text(source)
        written.append(name)
        return name

    yield declare
    for name in written:
        sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """Prefect server (SQLite), process pool, `prefect deploy --all`, worker and gateway, all real."""
    config = e2e_stack_config(
        tmp_path_factory.mktemp("stack-data"), local_sqs=True, extra_env={"FLOWHOOK_SWEEP_AFTER_SECONDS": "5"}
    )
    stack = LocalStack(config, progress=lambda message: None)
    with stack:
        yield stack


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[str]:
    """moto's standalone S3 server on 127.0.0.1 and a free port, in a thread of this process, for the whole
    session (each test takes a fresh bucket); its endpoint URL."""
    from tests.s3 import moto_server

    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Dummy AWS credentials in the environment and none of this machine's files, for code that builds its own
    S3 client from boto3's chain (the gateway, `open_spool`); that client cache is emptied before and after."""
    from flowhook.spool.s3_objects import s3_client
    from tests.s3 import CREDENTIALS

    for name, value in {
        **CREDENTIALS,
        "AWS_CONFIG_FILE": "/nonexistent/aws-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    s3_client.cache_clear()
    yield
    s3_client.cache_clear()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The figures tests measured (tests/figures.py), at the end of the run."""
    if FIGURES:
        terminalreporter.section("figures measured")
        for text in FIGURES:
            terminalreporter.write_line(text)
