"""A type's worker deployment as prefect.yaml spells it: made from the declaration and flowhook.names, written as
YAML that loads back to the same entry whatever the description holds, and valid to Prefect's own loader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.cli.deploy._models import PrefectYamlModel
from prefect.cli.deploy._triggers import _initialize_deployment_triggers
from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger

from flowhook.deployments import ROOT_FILE, deployment_description, worker_block, worker_entry
from flowhook.events import Catalog, EventData, EventType, TaskSize, load_catalog
from flowhook.events.builtin import DATA_UPDATE, SCHEDULED_TICK, USER_REQUEST
from flowhook.names import BATCH_READY, EVENT_TYPE_LABEL, RUN_TAG, WORK_POOL, WORKER_ENTRYPOINT, worker_deployment

ROOT = Path(__file__).resolve().parents[2]
POOL = {"name": WORK_POOL, "work_queue_name": "default"}


class InvoicePaid(EventData):
    """An invoice was paid: its amount is booked."""


def _type(name: str = "invoice_paid", **policies: Any) -> EventType:
    return EventType(name=name, model=InvoicePaid, handler=lambda data: {}, **policies)


def _load(block: str) -> list[dict[str, Any]]:
    """The block under `deployments:` of a file whose pool anchor is prefect.yaml's."""
    document = yaml.safe_load(f"definitions:\n  local: &local_pool {POOL}\ndeployments:\n{block}")
    deployments: list[dict[str, Any]] = document["deployments"]
    return deployments


def test_a_type_without_policies_gets_the_worker_flow_its_tag_and_one_trigger() -> None:
    [entry] = _load(worker_block(Catalog({"invoice_paid": _type()})))
    assert entry == {
        "name": "invoice_paid",
        "entrypoint": WORKER_ENTRYPOINT,
        "work_pool": POOL,
        "description": "Process batches of `invoice_paid` events. An invoice was paid: its amount is booked.",
        "tags": [RUN_TAG, "invoice_paid"],
        "triggers": [
            {
                "type": "event",
                "name": "flowhook: a invoice_paid batch is ready",
                "description": f"Run {worker_deployment('invoice_paid')} on each sealed invoice_paid batch "
                f"({BATCH_READY}).",
                "enabled": True,
                "posture": "Reactive",
                "expect": [BATCH_READY],
                "match": {"prefect.resource.id": "flowhook.batch.*", EVENT_TYPE_LABEL: "invoice_paid"},
                "threshold": 1,
                "parameters": {"batch": "{{ event.payload }}"},
            }
        ],
    }


def test_the_declared_description_and_concurrency_limit_go_into_the_entry() -> None:
    declared = _type(deployment_description="Book paid invoices.", concurrency_limit=2, size=TaskSize(256, 512))
    [entry] = _load(worker_block(Catalog({"invoice_paid": declared})))
    assert entry["description"] == "Book paid invoices."
    assert entry["concurrency_limit"] == 2
    assert "job_variables" not in entry["work_pool"]  # the size is the ECS pool's, not the local one's


@pytest.mark.parametrize(
    "description",
    [
        "Money: 'paid' # not a comment",
        'He said "yes", then: no.',
        "yes",
        "123",
        "- a leading dash, [brackets] and {braces}",
        "λ, μ and θ – per type",
        "*not an alias* & not an anchor",
        "{{ event.payload }}",
    ],
)
def test_any_description_loads_back_as_written(description: str) -> None:
    [entry] = _load(worker_block(Catalog({"invoice_paid": _type(deployment_description=description)})))
    assert entry["description"] == description


def test_the_block_holds_every_type_in_name_order_at_the_marker_indent() -> None:
    catalog = Catalog({name: _type(name) for name in ("zeta", "alpha", "mid")})
    block = worker_block(catalog, indent=4)
    assert [line for line in block.splitlines() if line.lstrip().startswith("- name:")] == [
        "    - name: alpha",
        "    - name: mid",
        "    - name: zeta",
    ]
    assert [entry["name"] for entry in _load(block)] == ["alpha", "mid", "zeta"]
    assert [entry["name"] for entry in _load(block)] == [worker_entry(catalog.get(n))["name"] for n in catalog.names]


def test_the_default_description_is_the_models_first_docstring_line() -> None:
    assert deployment_description(_type()) == (
        "Process batches of `invoice_paid` events. An invoice was paid: its amount is booked."
    )


def test_prefect_loads_the_repository_prefect_yaml_and_its_worker_triggers() -> None:
    """Prefect's own `prefect deploy` loader: the file validates, and each worker trigger becomes an event trigger
    on `flowhook.batch.ready` matching its type's label."""
    raw = yaml.safe_load((ROOT / ROOT_FILE).read_text())
    model = PrefectYamlModel.model_validate(raw)
    deployments = {d.name: d for d in model.deployments}
    assert {USER_REQUEST, DATA_UPDATE, SCHEDULED_TICK} <= set(deployments)
    for name in load_catalog().names:
        if name not in deployments:
            continue  # a type another test registered in this process; the CLI check covers the committed set
        spec = deployments[name].model_dump(exclude_unset=True, mode="json")
        [trigger] = _initialize_deployment_triggers(worker_deployment(name), spec["triggers"])
        assert isinstance(trigger, DeploymentEventTrigger)
        assert trigger.expect == {BATCH_READY}
        assert trigger.match.model_dump() == {"prefect.resource.id": "flowhook.batch.*", EVENT_TYPE_LABEL: name}
        assert spec["work_pool"]["name"] == WORK_POOL and spec["entrypoint"] == WORKER_ENTRYPOINT
