"""The ECS pool's pure parts: its job template, the Fargate sizes, the deploy overlay, and what prefect-aws's
own code renders from them for a flow run (through a stand-in for the Prefect API; the e2e test uses a server).
The overlay is made from prefect.yaml when used (`flowhook ecs overlay`, `flowhook ecs deploy`), never committed."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import yaml
from prefect.client.schemas.objects import Flow, FlowRun, WorkPool
from prefect.client.schemas.responses import DeploymentResponse
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect_aws.workers.ecs_worker import ECSJobConfiguration, ECSWorker
from typer.testing import CliRunner

from flowhook.cli import app
from flowhook.ecs import (
    POOL_NAME,
    PROJECT_DIR,
    EcsRun,
    PoolDefaults,
    TaskSize,
    base_job_template,
    check_api_url,
    check_shared_data,
    ecs_overlay,
    preview_flow_run,
    render_flow_run,
    worker_sizes,
)
from flowhook.events import load_catalog

ROOT = Path(__file__).resolve().parents[1]
LOCAL_API = "http://127.0.0.1:4200/api"
REMOTE_API = "https://prefect.internal.example.com/api"
runner = CliRunner()


def _values(**overrides: Any) -> PoolDefaults:
    values: dict[str, Any] = {
        "image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/flowhook:abc123",
        "prefect_api_url": REMOTE_API,
        "subnets": ("subnet-0aaa", "subnet-0bbb"),
        "security_groups": ("sg-0123",),
        "efs_file_system_id": "fs-0abc",
        "gateway_host": "gateway.internal.example.com",
        "execution_role_arn": "arn:aws:iam::123456789012:role/flowhook-execution",
        "task_role_arn": "arn:aws:iam::123456789012:role/flowhook-task",
        "cluster": "flowhook",
    }
    return PoolDefaults(**{**values, **overrides})


class _PrefectApi:
    """The three reads `render_flow_run` makes, answered from memory."""

    def __init__(self, pool: WorkPool, deployment: DeploymentResponse, flow: Flow) -> None:
        self.pool, self.deployment, self.flow = pool, deployment, flow

    async def read_deployment(self, deployment_id: UUID) -> DeploymentResponse:
        assert deployment_id == self.deployment.id
        return self.deployment

    async def read_work_pool(self, name: str) -> WorkPool:
        assert name == self.pool.name
        return self.pool

    async def read_flow(self, flow_id: UUID) -> Flow:
        assert flow_id == self.flow.id
        return self.flow


def _render(template: dict[str, Any], job_variables: dict[str, Any] | None = None) -> EcsRun:
    """Render a flow run of a deployment on a pool with `template`, in a process whose own API is local."""
    flow = Flow(name="process-batch")
    pool = WorkPool(name=POOL_NAME, type="ecs", base_job_template=template)
    deployment = DeploymentResponse(
        name="user_request", flow_id=flow.id, work_pool_name=POOL_NAME, job_variables=job_variables or {}
    )
    with temporary_settings(updates={PREFECT_API_URL: LOCAL_API}):
        return asyncio.run(render_flow_run(_PrefectApi(pool, deployment, flow), preview_flow_run(deployment)))  # type: ignore[arg-type]


def test_the_template_keeps_every_prefect_aws_variable_but_the_vpc_lookup() -> None:
    stock = ECSWorker.get_default_base_job_template()
    ours = base_job_template()
    stock_names = set(stock["variables"]["properties"]) - {"vpc_id", "network_configuration"}
    assert stock_names < set(ours["variables"]["properties"])
    assert "vpc_id" not in ours["job_configuration"] and "network_configuration" not in ours["job_configuration"]
    assert ours["variables"]["required"] == ["prefect_api_url", "subnets", "gateway_host"]
    for name in ours["variables"]["required"]:
        assert "default" not in ours["variables"]["properties"][name], name
    defaults = {name: spec.get("default") for name, spec in ours["variables"]["properties"].items()}
    assert (defaults["launch_type"], defaults["image"], defaults["cpu"], defaults["memory"]) == (
        "FARGATE",
        "flowhook:latest",
        512,
        1024,
    )
    assert ours["job_configuration"]["command"] == "{{ command }}"  # prefect-aws's: the worker's default command


@pytest.mark.parametrize(
    ("cpu", "memory"), [(256, 512), (256, 2048), (512, 1024), (512, 4096), (1024, 8192), (4096, 30720), (16384, 122880)]
)
def test_fargate_sizes_that_exist(cpu: int, memory: int) -> None:
    assert TaskSize(cpu, memory) == TaskSize(cpu, memory)


@pytest.mark.parametrize(
    ("cpu", "memory", "message"),
    [
        (256, 4096, "256 CPU units with 512–2048 MiB"),
        (512, 512, "512 CPU units with 1024–4096 MiB"),
        (1024, 2500, "not 2500"),
        (8192, 20000, "not 20000"),
        (300, 1024, "no size of 300 CPU units"),
    ],
)
def test_fargate_sizes_that_do_not(cpu: int, memory: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TaskSize(cpu, memory)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:4200/api",
        "http://localhost:4200/api",
        "http://[::1]:4200/api",
        "http://0.0.0.0:4200/api",
        "http://127.1.2.3/api",
        "ftp://prefect.example.com/api",
        "prefect.example.com/api",
    ],
)
def test_an_api_url_a_task_cannot_reach_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match=r"loopback|not an http"):
        check_api_url(url)


@pytest.mark.parametrize("url", [REMOTE_API, "http://10.0.3.7:4200/api", "https://prefect.example.com/prefect/api"])
def test_a_reachable_api_url_is_taken(url: str) -> None:
    check_api_url(url)
    assert (
        base_job_template(_values(prefect_api_url=url))["variables"]["properties"]["prefect_api_url"]["default"] == url
    )


def test_the_overlay_has_every_deployment_and_trigger_of_the_root_file_on_the_ecs_pool() -> None:
    root = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    # `flowhook ecs overlay` in a process of its own: the catalog is the built-in types, none a test registered.
    done = subprocess.run(
        [sys.executable, "-m", "flowhook", "ecs", "overlay"],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("FLOWHOOK_")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    overlay = yaml.safe_load(done.stdout)
    sizes = worker_sizes(load_catalog())
    assert overlay == ecs_overlay(root, sizes=sizes)
    assert overlay["pull"] == [{"prefect.deployments.steps.set_working_directory": {"directory": PROJECT_DIR}}]
    assert [d["name"] for d in overlay["deployments"]] == [d["name"] for d in root["deployments"]]
    for ours, theirs in zip(overlay["deployments"], root["deployments"], strict=True):
        assert ours.get("triggers") == theirs.get("triggers")
        assert ours.get("schedules") == theirs.get("schedules")
        assert {k: v for k, v in ours.items() if k != "work_pool"} == {
            k: v for k, v in theirs.items() if k != "work_pool"
        }
        assert ours["work_pool"]["name"] == POOL_NAME
        size = sizes.get(ours["name"]) if ours["entrypoint"].startswith("flows/process_batch.py") else None
        expected = {} if size is None else {"cpu": size.cpu, "memory": size.memory}
        assert ours["work_pool"]["job_variables"] == expected  # the local pool's `command` is not carried over


def test_the_built_in_types_declare_their_fargate_sizes() -> None:
    sizes = worker_sizes(load_catalog())
    built_in = ("user_request", "data_update", "scheduled_tick")
    assert {name: (sizes[name].cpu, sizes[name].memory) for name in built_in} == {
        "user_request": (512, 1024),
        "data_update": (1024, 2048),
        "scheduled_tick": (256, 512),
    }


def test_a_type_that_declares_no_size_runs_at_the_pool_default_size() -> None:
    root = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    worker = dict(root["deployments"][0], name="invoice_paid")
    overlay = ecs_overlay({**root, "deployments": [worker]}, sizes={"user_request": TaskSize(512, 1024)})
    assert overlay["deployments"][0]["work_pool"] == {
        "name": POOL_NAME,
        "work_queue_name": "default",
        "job_variables": {},
    }


def test_only_worker_deployments_take_a_size() -> None:
    root = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    sweeper = next(d for d in root["deployments"] if d["name"] == "every-minute")
    overlay = ecs_overlay({**root, "deployments": [sweeper]}, sizes={"every-minute": TaskSize(1024, 2048)})
    assert overlay["deployments"][0]["work_pool"]["job_variables"] == {}


def test_prefect_aws_default_template_hands_a_task_the_local_api_url() -> None:
    # The measured problem the pool's `prefect_api_url` solves: the worker's own settings reach the task.
    stock = ECSWorker.get_default_base_job_template()
    run = FlowRun(flow_id=Flow(name="f").id, name="r")

    async def configure() -> ECSJobConfiguration:
        config = await ECSJobConfiguration.from_template_and_values(stock, {})
        config.prepare_for_flow_run(run)
        return config

    with temporary_settings(updates={PREFECT_API_URL: LOCAL_API}):
        assert asyncio.run(configure()).env["PREFECT_API_URL"] == LOCAL_API


@pytest.mark.parametrize(
    ("job_variables", "cpu", "memory"),
    [({}, 512, 1024), ({"cpu": 256, "memory": 512}, 256, 512), ({"cpu": 1024, "memory": 2048}, 1024, 2048)],
)
def test_a_flow_run_renders_as_a_fargate_task_reporting_to_the_remote_api(
    job_variables: dict[str, Any], cpu: int, memory: int
) -> None:
    run = _render(base_job_template(_values()), job_variables)
    definition, request, env = run.task_definition, run.run_task, run.environment()
    assert definition is not None and run.problems() == []
    assert request["launchType"] == "FARGATE" and request["cluster"] == "flowhook"
    assert (definition["cpu"], definition["memory"]) == (str(cpu), str(memory))
    assert (request["overrides"]["cpu"], request["overrides"]["memory"]) == (str(cpu), str(memory))
    assert definition["requiresCompatibilities"] == ["FARGATE"] and definition["networkMode"] == "awsvpc"
    assert (
        definition["containerDefinitions"][0]["image"] == "123456789012.dkr.ecr.eu-west-1.amazonaws.com/flowhook:abc123"
    )
    assert definition["executionRoleArn"] == "arn:aws:iam::123456789012:role/flowhook-execution"
    assert request["overrides"]["taskRoleArn"] == "arn:aws:iam::123456789012:role/flowhook-task"
    assert run.container()["command"] == ["prefect", "flow-run", "execute"]
    assert env["PREFECT_API_URL"] == REMOTE_API and env["FLOWHOOK_PREFECT_API_URL"] == REMOTE_API
    assert "127.0.0.1" not in json.dumps(request)
    assert env["FLOWHOOK_DATA_DIR"] == "/mnt/flowhook" and env["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == "30"
    assert (env["FLOWHOOK_GATEWAY_HOST"], env["FLOWHOOK_GATEWAY_PORT"]) == ("gateway.internal.example.com", "8000")
    assert definition["containerDefinitions"][0]["mountPoints"] == [
        {"sourceVolume": "flowhook-data", "containerPath": "/mnt/flowhook"}
    ]
    assert definition["volumes"] == [
        {
            "name": "flowhook-data",
            "efsVolumeConfiguration": {"fileSystemId": "fs-0abc", "rootDirectory": "/", "transitEncryption": "ENABLED"},
        }
    ]
    assert "secrets" not in definition["containerDefinitions"][0]  # prefect-aws drops empty keys
    assert request["networkConfiguration"] == {
        "awsvpcConfiguration": {
            "subnets": ["subnet-0aaa", "subnet-0bbb"],
            "securityGroups": ["sg-0123"],
            "assignPublicIp": "ENABLED",
        }
    }


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"security_groups": (), "assign_public_ip": False}, {"securityGroups": [], "assignPublicIp": "DISABLED"}),
        ({"subnets": ("subnet-1",)}, {"subnets": ["subnet-1"]}),
        ({"env": {"FLOWHOOK_SQS__QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/1/q"}}, {}),
    ],
)
def test_pool_values_reach_the_request(overrides: dict[str, Any], expected: dict[str, Any]) -> None:
    run = _render(base_job_template(_values(**overrides)))
    network = run.run_task["networkConfiguration"]["awsvpcConfiguration"]
    assert {key: network[key] for key in expected} == expected
    for name, value in overrides.get("env", {}).items():
        assert run.environment()[name] == value
    assert run.problems() == []


S3_ENV = {
    "FLOWHOOK_SPOOL_URL": "s3://flowhook-data/spool",
    "FLOWHOOK_STORE": "ducklake",
    "FLOWHOOK_DUCKLAKE_DATA_PATH": "s3://flowhook-data/lake/",
}
CATALOG_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:flowhook-catalog-AbCdEf"


def test_a_pool_on_s3_and_ducklake_renders_a_task_without_a_file_system() -> None:
    values = _values(efs_file_system_id=None, env=S3_ENV, secrets={"FLOWHOOK_DUCKLAKE_CATALOG": CATALOG_ARN})
    check_shared_data(values)
    run = _render(base_job_template(values))
    definition, env = run.task_definition, run.environment()
    assert definition is not None and run.problems() == []
    assert "volumes" not in definition and "mountPoints" not in definition["containerDefinitions"][0]
    assert {name: env[name] for name in S3_ENV} == S3_ENV
    assert definition["containerDefinitions"][0]["secrets"] == [
        {"name": "FLOWHOOK_DUCKLAKE_CATALOG", "valueFrom": CATALOG_ARN}
    ]
    assert "FLOWHOOK_DUCKLAKE_CATALOG" not in env  # ECS sets it from the secret; the pool's JSON has only the ARN


def test_the_committed_template_renders_without_a_file_system() -> None:
    template = base_job_template()
    assert template["variables"]["properties"]["volumes"]["default"] == []
    definition = _render(template).task_definition
    assert definition is not None  # prefect-aws drops the empty lists: no volume, no mount point, no secret
    assert {"volumes", "mountPoints", "secrets"}.isdisjoint({**definition, **definition["containerDefinitions"][0]})


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"FLOWHOOK_SPOOL_URL": "s3://b/spool"},
        {"FLOWHOOK_STORE": "ducklake", "FLOWHOOK_DUCKLAKE_DATA_PATH": "s3://b/lake/"},
        {**S3_ENV, "FLOWHOOK_STORE": "duckdb"},
        {**S3_ENV, "FLOWHOOK_DUCKLAKE_DATA_PATH": "/mnt/lake"},
    ],
)
def test_a_pool_sharing_neither_efs_nor_s3_and_ducklake_is_refused(env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="no batch and no store"):
        check_shared_data(_values(efs_file_system_id=None, env=env))
    check_shared_data(_values(env=env))  # with EFS any of these is a pool


def test_a_deployment_env_adds_to_the_pool_env_and_may_override_it() -> None:
    run = _render(
        base_job_template(_values()), {"env": {"FLOWHOOK_DRAIN__IDLE_SECONDS": "30", "FLOWHOOK_GATEWAY_PORT": "9000"}}
    )
    env = run.environment()
    assert (env["FLOWHOOK_DRAIN__IDLE_SECONDS"], env["FLOWHOOK_GATEWAY_PORT"]) == ("30", "9000")
    assert env["PREFECT_API_URL"] == REMOTE_API


def test_problems_names_what_aws_would_refuse() -> None:
    run = _render(base_job_template(_values()))
    assert run.task_definition is not None
    broken = EcsRun(
        task_definition={**run.task_definition, "containerDefinitions": [{"name": "prefect", "cpu": "256"}]},
        run_task={**run.run_task, "launchType": 7},
    )
    problems = "\n".join(broken.problems())
    assert "RegisterTaskDefinition" in problems and "containerDefinitions[0].cpu" in problems
    assert "RunTask" in problems and "launchType" in problems


def test_cloudwatch_logs_and_secrets_need_an_execution_role() -> None:
    with pytest.raises(ValueError, match="execution role"):
        _values(execution_role_arn=None, cloudwatch_logs=True)
    with pytest.raises(ValueError, match="secrets need an execution role"):
        _values(execution_role_arn=None, secrets={"PGPASSWORD": CATALOG_ARN})


EFS = ["--efs", "fs-1"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([*EFS, "--api-url", LOCAL_API], "loopback"),
        ([*EFS, "--api-url", REMOTE_API, "--cpu", "256", "--memory", "4096"], "256 CPU units"),
        ([*EFS, "--api-url", REMOTE_API, "--env", "FLOWHOOK_X"], "--env 'FLOWHOOK_X' is not NAME=VALUE"),
        ([*EFS, "--api-url", REMOTE_API, "--cloudwatch-logs"], "execution role"),
        ([*EFS, "--api-url", REMOTE_API, "--secret", "PGPASSWORD=arn:aws:ssm:x"], "secrets need an execution role"),
        ([*EFS, "--api-url", REMOTE_API, "--secret", "PGPASSWORD"], "--secret 'PGPASSWORD' is not NAME=VALUE"),
        ([*EFS, "--api-url", REMOTE_API, "--store", "sqlite"], "not 'sqlite'"),
        (["--efs", "vol-1", "--api-url", REMOTE_API], "not an EFS file system id"),
        (["--api-url", REMOTE_API, "--spool-url", "/mnt/spool", "--store", "ducklake"], "s3://bucket/prefix"),
        (["--api-url", REMOTE_API], "ECS tasks would find no batch and no store: give --efs"),
        (["--api-url", REMOTE_API, "--spool-url", "s3://b/spool", "--store", "ducklake"], "no batch and no store"),
        (["--api-url", REMOTE_API, "--spool-url", "s3://b/spool", "--env", "FLOWHOOK_STORE=duckdb"], "no batch"),
    ],
)
def test_pool_refuses_bad_values_in_a_sentence(args: list[str], message: str) -> None:
    required = ["--subnet", "subnet-1", "--gateway-host", "gw.internal"]
    result = runner.invoke(app, ["ecs", "pool", *required, *args])
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output


def test_render_wants_flow_slash_deployment() -> None:
    result = runner.invoke(app, ["ecs", "render", "user_request"])
    assert result.exit_code == 1 and "process-batch/user_request" in result.output


def test_ecs_generate_is_an_alias_of_deployments_generate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    alias, command = (runner.invoke(app, [*group, "generate", "--check"]) for group in (["ecs"], ["deployments"]))
    assert (alias.exit_code, alias.output) == (command.exit_code, command.output)
    assert "prefect.yaml" in alias.output
