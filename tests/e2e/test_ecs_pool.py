"""The ECS pool end to end against a real Prefect server, without AWS: `flowhook ecs pool` creates the pool from
the template, `flowhook ecs deploy` deploys the overlay (every deployment, triggers included), and a flow run per
event type renders, through prefect-aws's own job configuration and worker steps, as the Fargate task it would be."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import PrefectHTTPStatusError
from prefect_aws import AwsCredentials
from typer.testing import CliRunner

import flowhook.events.builtin as builtin_types
from flowhook.cli import app
from flowhook.ecs import POOL_NAME, EcsRun, PoolDefaults, apply_pool, base_job_template, render_flow_run, worker_sizes
from flowhook.events import load_catalog, registry
from flowhook.spool import new_batch_id
from tests.servers import prefect_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
SIZES = worker_sizes(load_catalog())
"""The Fargate size each event type declares."""
REMOTE_API = "https://prefect.internal.example.com/api"
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/flowhook:e2e"
EXECUTION_ROLE = "arn:aws:iam::123456789012:role/flowhook-execution"
TASK_ROLE = "arn:aws:iam::123456789012:role/flowhook-task"
CREDENTIALS_BLOCK = "flowhook-aws"
runner = CliRunner()


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Prefect server alone (SQLite in a temporary PREFECT_HOME), stopped by PID at the end."""
    with prefect_server(tmp_path_factory.mktemp("ecs-data")) as api_url:
        yield api_url


@pytest.fixture(scope="module")
def deployed(prefect_api: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The pool made and the overlay deployed through the CLI, as a user would."""
    AwsCredentials(region_name="eu-west-1").save(CREDENTIALS_BLOCK, overwrite=True)
    pool = runner.invoke(
        app,
        [
            "ecs", "pool",
            "--api-url", REMOTE_API,
            "--image", IMAGE,
            "--subnet", "subnet-0aaa", "--subnet", "subnet-0bbb",
            "--security-group", "sg-0123",
            "--no-public-ip",
            "--efs", "fs-0abc",
            "--gateway-host", "gateway.internal.example.com",
            "--cluster", "flowhook",
            "--execution-role-arn", EXECUTION_ROLE,
            "--task-role-arn", TASK_ROLE,
            "--credentials-block", CREDENTIALS_BLOCK,
        ],
    )  # fmt: skip
    assert pool.exit_code == 0, pool.output
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(ROOT)
        patch.setenv("PREFECT_HOME", str(tmp_path_factory.mktemp("deploy-home")))
        # The catalog a fresh `flowhook` process loads: the built-in types alone (other tests register their own in
        # this process, and `ecs deploy` refuses a prefect.yaml that does not match the catalog it sees).
        builtin = {name: t for name, t in registry.registered().items() if t.model.__module__ == builtin_types.__name__}
        patch.setattr(registry, "_REGISTRY", builtin)
        deploy = runner.invoke(app, ["ecs", "deploy"])
    assert deploy.exit_code == 0, deploy.output


def _root_deployments() -> list[dict[str, Any]]:
    deployments: list[dict[str, Any]] = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    return deployments


def test_every_deployment_of_prefect_yaml_is_on_the_ecs_pool_with_its_triggers(deployed: None) -> None:
    async def read() -> dict[str, tuple[Any, list[Any]]]:
        async with get_client() as client:
            pool = await client.read_work_pool(POOL_NAME)
            variables = pool.base_job_template["variables"]["properties"]
            assert pool.type == "ecs" and variables["prefect_api_url"]["default"] == REMOTE_API
            block_id = variables["aws_credentials"]["default"]["$ref"]["block_document_id"]
            assert (await client.read_block_document(UUID(block_id))).name == CREDENTIALS_BLOCK
            found = {}
            for deployment in await client.read_deployments():
                automations = await client.read_resource_related_automations(f"prefect.deployment.{deployment.id}")
                found[deployment.name] = (deployment, automations)
            return found

    found = asyncio.run(read())
    assert set(found) == {d["name"] for d in _root_deployments()}
    for spec in _root_deployments():
        deployment, automations = found[spec["name"]]
        assert deployment.work_pool_name == POOL_NAME
        assert deployment.pull_steps == [
            {"prefect.deployments.steps.set_working_directory": {"directory": "/opt/flowhook"}}
        ]
        size = SIZES.get(spec["name"]) if spec["entrypoint"].startswith("flows/process_batch.py") else None
        assert deployment.job_variables == ({} if size is None else {"cpu": size.cpu, "memory": size.memory})
        assert len(automations) == len(spec.get("triggers", [])), spec["name"]
        for automation, trigger in zip(automations, spec.get("triggers", []), strict=True):
            assert automation.trigger.expect == set(trigger["expect"])  # type: ignore[union-attr]
            assert automation.trigger.match.model_dump() == trigger["match"]  # type: ignore[union-attr]
            assert automation.trigger.posture.value == trigger["posture"]  # type: ignore[union-attr]
            assert automation.trigger.within.total_seconds() == trigger.get("within", 0)  # type: ignore[union-attr]
            assert automation.actions[0].parameters == trigger.get("parameters")  # type: ignore[union-attr]


def _batch(event_type: str) -> dict[str, Any]:
    return {"batch_id": new_batch_id(event_type), "event_type": event_type, "count": 3, "sealed": datetime.now(UTC)}


async def _create_and_render(event_type: str) -> tuple[FlowRun, EcsRun]:
    async with get_client() as client:
        deployment = await client.read_deployment_by_name(f"process-batch/{event_type}")
        flow_run = await client.create_flow_run_from_deployment(deployment.id, parameters={"batch": _batch(event_type)})
        return flow_run, await render_flow_run(client, flow_run)


@pytest.mark.parametrize("event_type", sorted(SIZES))
def test_a_flow_run_of_each_event_type_renders_as_its_fargate_task(deployed: None, event_type: str) -> None:
    flow_run, run = asyncio.run(_create_and_render(event_type))
    size, definition, request, env = SIZES[event_type], run.task_definition, run.run_task, run.environment()
    assert definition is not None and run.problems() == []
    assert request["launchType"] == "FARGATE" and definition["requiresCompatibilities"] == ["FARGATE"]
    assert (definition["cpu"], definition["memory"]) == (str(size.cpu), str(size.memory))
    assert (request["overrides"]["cpu"], request["overrides"]["memory"]) == (str(size.cpu), str(size.memory))
    assert definition["containerDefinitions"][0]["image"] == IMAGE
    assert run.container()["command"] == ["prefect", "flow-run", "execute"]
    assert env["PREFECT__FLOW_RUN_ID"] == str(flow_run.id)
    assert env["PREFECT_API_URL"] == REMOTE_API
    assert "127.0.0.1" not in json.dumps(request)  # this process's own API is http://127.0.0.1:<port>/api
    assert request["cluster"] == "flowhook"
    assert request["networkConfiguration"] == {
        "awsvpcConfiguration": {
            "subnets": ["subnet-0aaa", "subnet-0bbb"],
            "securityGroups": ["sg-0123"],
            "assignPublicIp": "DISABLED",
        }
    }
    assert definition["executionRoleArn"] == EXECUTION_ROLE and request["overrides"]["taskRoleArn"] == TASK_ROLE
    assert {"key": "prefect.io/flow-run-id", "value": str(flow_run.id)} in request["tags"]  # the observer's filter
    assert definition["volumes"][0]["efsVolumeConfiguration"]["fileSystemId"] == "fs-0abc"


def test_render_prints_what_a_run_of_the_deployment_would_get(deployed: None) -> None:
    result = runner.invoke(app, ["ecs", "render", "process-batch/data_update", "--json"])
    assert result.exit_code == 0, result.output
    rendered = json.loads(result.output)
    container = rendered["run_task"]["overrides"]["containerOverrides"][0]
    env = {item["name"]: item["value"] for item in container["environment"]}
    assert (rendered["task_definition"]["cpu"], rendered["task_definition"]["memory"]) == ("1024", "2048")
    assert env["PREFECT_API_URL"] == REMOTE_API and container["command"] == ["prefect", "flow-run", "execute"]


def test_a_pool_on_s3_and_ducklake_renders_tasks_without_a_file_system(deployed: None) -> None:
    # After the EFS checks: it replaces the pool's template (the deployments stay).
    catalog = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:flowhook-catalog-AbCdEf"
    pool = runner.invoke(
        app,
        [
            "ecs", "pool",
            "--api-url", REMOTE_API,
            "--image", IMAGE,
            "--subnet", "subnet-0aaa",
            "--gateway-host", "gateway.internal.example.com",
            "--spool-url", "s3://flowhook-data/spool",
            "--store", "ducklake",
            "--ducklake-data-path", "s3://flowhook-data/lake/",
            "--env", "FLOWHOOK_S3__REGION=eu-west-1",
            "--secret", f"FLOWHOOK_DUCKLAKE_CATALOG={catalog}",
            "--execution-role-arn", EXECUTION_ROLE,
            "--task-role-arn", TASK_ROLE,
        ],
    )  # fmt: skip
    assert pool.exit_code == 0, pool.output
    _, run = asyncio.run(_create_and_render("user_request"))
    definition, env = run.task_definition, run.environment()
    assert definition is not None and run.problems() == []
    container = definition["containerDefinitions"][0]
    assert "volumes" not in definition and "mountPoints" not in container
    assert container["secrets"] == [{"name": "FLOWHOOK_DUCKLAKE_CATALOG", "valueFrom": catalog}]
    assert (env["FLOWHOOK_SPOOL_URL"], env["FLOWHOOK_STORE"], env["FLOWHOOK_S3__REGION"]) == (
        "s3://flowhook-data/spool",
        "ducklake",
        "eu-west-1",
    )
    assert env["FLOWHOOK_DUCKLAKE_DATA_PATH"] == "s3://flowhook-data/lake/" and "FLOWHOOK_DUCKLAKE_CATALOG" not in env


def test_a_pool_without_the_api_url_refuses_flow_runs(deployed: None) -> None:
    # Last in this file: it takes the URL's default out of the pool, as the committed template ships.
    async def without_url() -> None:
        async with get_client() as client:
            values = PoolDefaults(subnets=("subnet-0aaa",), gateway_host="gw")
            await apply_pool(client, base_job_template(values))
            deployment = await client.read_deployment_by_name("process-batch/user_request")
            await client.create_flow_run_from_deployment(deployment.id, parameters={"batch": _batch("user_request")})

    with pytest.raises(PrefectHTTPStatusError) as refused:
        asyncio.run(without_url())
    assert refused.value.response.status_code == 422
    assert "prefect_api_url" in refused.value.response.text
