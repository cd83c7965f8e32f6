"""Store fixtures: `store` runs a test against each backend, a DuckDB file and a DuckLake on PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowhook.store import EventStore
from tests.store.backends import StoreSpec, fresh_lake, lake_template, postgres_unreachable


@pytest.fixture(scope="session")
def lake_catalog_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An empty DuckLake catalog database to clone. Without PostgreSQL the tests that need it fail (`make test`
    starts one); FLOWHOOK_TESTS_WITHOUT_POSTGRES=1 skips them instead, for a machine that has none."""
    reason = postgres_unreachable()
    if reason:
        if os.environ.get("FLOWHOOK_TESTS_WITHOUT_POSTGRES") == "1":
            pytest.skip(reason)
        pytest.fail(f"{reason} (`make test` starts PostgreSQL; FLOWHOOK_TESTS_WITHOUT_POSTGRES=1 skips these tests)")
    with lake_template(tmp_path_factory.mktemp("lake-template")) as name:
        yield name


@pytest.fixture
def lake_spec(lake_catalog_template: str, tmp_path: Path) -> Iterator[StoreSpec]:
    """A fresh DuckLake: a new PostgreSQL database for its catalog, a temporary folder for its data files."""
    with fresh_lake(tmp_path / "lake", template=lake_catalog_template) as spec:
        yield spec


@pytest.fixture(params=["duckdb", "ducklake"])
def store_spec(request: pytest.FixtureRequest, tmp_path: Path) -> StoreSpec:
    if request.param == "duckdb":
        return StoreSpec("duckdb", tmp_path / "events.duckdb")
    spec: StoreSpec = request.getfixturevalue("lake_spec")
    return spec


@pytest.fixture
def store(store_spec: StoreSpec) -> EventStore:
    """An empty store of each backend."""
    return store_spec.open()
