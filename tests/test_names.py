"""prefect.yaml spells out the names that flowhook.names defines once: the work pool, the worker flow's
deployment per type, the batch event its triggers expect, and the deployments the CLI and the stack start."""

from __future__ import annotations

import fnmatch
import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from flowhook.events.builtin import DATA_UPDATE, SCHEDULED_TICK, USER_REQUEST
from flowhook.names import (
    BATCH_READY,
    BATCH_RESOURCE,
    REPORT_DEPLOYMENT,
    RUN_TAG,
    SOURCE_DEPLOYMENTS,
    TICK_DEPLOYMENT,
    WORK_POOL,
    batch_resource,
    worker_deployment,
)

ROOT = Path(__file__).resolve().parents[1]
DEPLOYMENTS: list[dict[str, Any]] = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]


def _flow_name(entrypoint: str) -> str:
    """The name Prefect gives the flow at `path.py:function` (what a deployment's full name starts with)."""
    path, function = entrypoint.split(":")
    flow = getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), function)
    name: str = flow.name
    return name


def _full_names() -> dict[str, dict[str, Any]]:
    return {f"{_flow_name(d['entrypoint'])}/{d['name']}": d for d in DEPLOYMENTS}


def test_every_deployment_runs_on_the_work_pool_with_the_run_tag() -> None:
    for deployment in DEPLOYMENTS:
        assert deployment["work_pool"]["name"] == WORK_POOL, deployment["name"]
        assert RUN_TAG in deployment["tags"], deployment["name"]


def test_the_deployments_started_by_name_are_in_prefect_yaml() -> None:
    names = _full_names()
    for name in (TICK_DEPLOYMENT, REPORT_DEPLOYMENT, *SOURCE_DEPLOYMENTS):
        assert name in names, f"{name} is not a deployment of prefect.yaml; it has {sorted(names)}"


@pytest.mark.parametrize("event_type", [USER_REQUEST, DATA_UPDATE, SCHEDULED_TICK])
def test_each_built_in_type_has_a_worker_deployment_triggered_by_its_batch_events(event_type: str) -> None:
    deployment = _full_names().get(worker_deployment(event_type))
    assert deployment is not None, f"prefect.yaml has no {worker_deployment(event_type)}"
    [trigger] = deployment["triggers"]
    assert trigger["expect"] == [BATCH_READY]
    assert trigger["match"] == {"prefect.resource.id": f"{BATCH_RESOURCE}.*", "flowhook.event-type": event_type}
    assert fnmatch.fnmatchcase(batch_resource(f"{event_type}-1764224460123-9f2c01ab"), f"{BATCH_RESOURCE}.*")


def test_every_worker_deployment_is_the_worker_flow_and_named_after_its_type() -> None:
    for name, deployment in _full_names().items():
        if any(BATCH_READY in trigger.get("expect", []) for trigger in deployment.get("triggers", [])):
            assert name == worker_deployment(deployment["name"])
