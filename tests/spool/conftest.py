"""Spool fixtures: `spool_spec` runs a contract test against each backend, a local folder and S3 (moto)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import s3
from tests.spool.backends import SpoolSpec


@pytest.fixture(params=["local", "s3"])
def spool_spec(request: pytest.FixtureRequest, tmp_path: Path) -> SpoolSpec:
    if request.param == "local":
        return SpoolSpec("local", root=tmp_path / "spool")
    endpoint: str = request.getfixturevalue("moto_s3")
    return SpoolSpec("s3", endpoint=endpoint, bucket=s3.new_bucket(s3.client(endpoint)))
