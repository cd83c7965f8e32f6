"""A live gateway for the sources that deliver through it, and the settings that point at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flowhook.settings import Settings
from flowhook.sources.pool import close_connections
from tests.servers import serve


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    """Settings of a gateway serving on a free port (managed secrets under `tmp_path`); the process's connections
    to it are closed afterwards."""
    base = Settings(data_dir=tmp_path, sources_file=tmp_path / "none.yaml")
    with serve(base) as client:
        yield base.model_copy(update={"gateway_port": client.base_url.port})
    close_connections()
