"""The `flowhook-ecs` work pool's base job template: prefect-aws's ECS default with flowhook's variables.

What it adds to `ECSWorker.get_default_base_job_template()`:

- `prefect_api_url` (required): the task's `PREFECT_API_URL`. Without it a task would inherit the
  worker's own Prefect settings, typically `http://127.0.0.1:4200/api`, which a task cannot reach.
- the `FLOWHOOK_*` settings a flow run needs away from the worker's machine: the data folder, and the
  gateway that the source deployments deliver through; and `PREFECT_FLOWS_HEARTBEAT_FREQUENCY`, which the
  zombie automation needs.
- the task definition's `volumes`, the container's `mount_points` and `secrets` as variables, empty by
  default: `flowhook ecs pool --efs fs-…` fills the first two with an EFS data folder shared with the gateway;
  with the S3 spool and DuckLake on S3 (`--spool-url`, `--store ducklake`) tasks need no shared file system.
- the task's network as variables (`subnets` required, `security_groups`, `assign_public_ip`), written
  into the run-task request, so the worker needs no EC2 calls to infer a VPC (prefect-aws's
  `vpc_id`/`network_configuration` variables are removed).
- Fargate defaults: launch type FARGATE, 512 CPU units, 1024 MiB, image `flowhook:latest`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from flowhook.events.policies import TaskSize

POOL_NAME = "flowhook-ecs"
"""The ECS work pool the overlay's deployments run on."""

PROJECT_DIR = "/opt/flowhook"
"""The repository root inside the image (deployments/ecs/Dockerfile's WORKDIR): `flows/…` resolve from it."""

DEFAULT_IMAGE = "flowhook:latest"
DEFAULT_DATA_DIR = "/mnt/flowhook"
DATA_VOLUME = "flowhook-data"
HEARTBEAT_SECONDS = "30"
"""Flow runs' heartbeat period: deployments/automations.yaml marks a run silent for 90 s Crashed."""

REQUIRED = ("prefect_api_url", "subnets", "gateway_host")
"""Variables without a usable default: a flow run of a pool that lacks one is refused by the server (422)."""

DEFAULT_SIZE = TaskSize(512, 1024)


@dataclass(frozen=True, kw_only=True)
class PoolDefaults:
    """Values a pool bakes in as its variables' defaults (what `flowhook ecs pool` sets); None leaves one unset."""

    image: str = DEFAULT_IMAGE
    prefect_api_url: str | None = None
    subnets: tuple[str, ...] = ()
    security_groups: tuple[str, ...] = ()
    assign_public_ip: bool = True
    efs_file_system_id: str | None = None
    efs_root_directory: str = "/"
    data_dir: str = DEFAULT_DATA_DIR
    gateway_host: str | None = None
    gateway_port: int = 8000
    cluster: str | None = None
    execution_role_arn: str | None = None
    task_role_arn: str | None = None
    credentials_block_id: str | None = None
    cloudwatch_logs: bool = False
    size: TaskSize = DEFAULT_SIZE
    env: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)
    """Environment variable → Secrets Manager secret or SSM parameter (ARN) that ECS injects at start."""

    def __post_init__(self) -> None:
        if self.prefect_api_url is not None:
            check_api_url(self.prefect_api_url)
        if self.cloudwatch_logs and not self.execution_role_arn:
            raise ValueError("CloudWatch logs need an execution role (with logs:CreateLogStream and PutLogEvents)")
        if self.secrets and not self.execution_role_arn:
            raise ValueError("secrets need an execution role (ECS reads them with it: secretsmanager:GetSecretValue)")
        if self.efs_file_system_id is not None and not self.efs_file_system_id.startswith("fs-"):
            raise ValueError(f"{self.efs_file_system_id!r} is not an EFS file system id (fs-…)")

    def volumes(self) -> list[dict[str, Any]]:
        """The task definition's volumes: the EFS data folder, or none."""
        if self.efs_file_system_id is None:
            return []
        efs = {
            "fileSystemId": self.efs_file_system_id,
            "rootDirectory": self.efs_root_directory,
            "transitEncryption": "ENABLED",
        }
        return [{"name": DATA_VOLUME, "efsVolumeConfiguration": efs}]

    def mount_points(self) -> list[dict[str, Any]]:
        """The container's mount points: the EFS data folder at `data_dir`, or none."""
        if self.efs_file_system_id is None:
            return []
        return [{"sourceVolume": DATA_VOLUME, "containerPath": self.data_dir}]


def check_shared_data(values: PoolDefaults) -> None:
    """Refuse a pool whose tasks would share no spool and no store with the gateway and each other.

    Either an EFS data folder, or both the S3 spool and DuckLake with its files on S3 (in the pool's env)."""
    if values.efs_file_system_id is not None:
        return
    env = values.env
    spool, store = env.get("FLOWHOOK_SPOOL_URL", ""), env.get("FLOWHOOK_STORE", "duckdb")
    lake = env.get("FLOWHOOK_DUCKLAKE_DATA_PATH", "")
    if not (spool.startswith("s3://") and store == "ducklake" and lake.startswith("s3://")):
        raise ValueError(
            "ECS tasks would find no batch and no store: give --efs fs-… (a data folder shared with the gateway), "
            "or --spool-url s3://… with --store ducklake and --ducklake-data-path s3://…"
        )


def check_api_url(url: str) -> None:
    """Refuse a Prefect API URL an ECS task cannot reach: not http(s), or this machine's loopback."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"the Prefect API URL {url!r} is not an http(s) URL like https://prefect.example.com/api")
    host = parts.hostname
    try:
        address = ipaddress.ip_address(host)
        loopback = address.is_loopback or address.is_unspecified
    except ValueError:
        loopback = host == "localhost" or host.endswith(".localhost")
    if loopback:
        raise ValueError(
            f"the Prefect API URL {url!r} is this machine's loopback: an ECS task cannot reach it; "
            "give the address of the Prefect server as the task's subnets see it"
        )


def _string(title: str, description: str, default: str | None = None, **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"title": title, "type": "string", "description": description, **extra}
    if default is not None:
        schema["default"] = default
    return schema


def _strings(title: str, description: str, default: tuple[str, ...], **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"title": title, "type": "array", "items": {"type": "string"}, "description": description}
    if default or "minItems" not in extra:
        schema["default"] = list(default)
    return {**schema, **extra}


def _objects(title: str, description: str, default: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "title": title,
        "type": "array",
        "items": {"type": "object"},
        "description": description,
        "default": default,
    }


def _flowhook_variables(values: PoolDefaults) -> dict[str, dict[str, Any]]:
    return {
        "prefect_api_url": _string(
            "Prefect API URL",
            "The Prefect server's API as the task reaches it (e.g. https://prefect.internal.example.com/api); "
            "the task's PREFECT_API_URL. Never 127.0.0.1: that is the task itself.",
            values.prefect_api_url,
            pattern="^https?://",
        ),
        "data_dir": _string(
            "Data folder",
            "The task's FLOWHOOK_DATA_DIR: where `mount_points` mounts the EFS data folder, if any.",
            values.data_dir,
        ),
        "volumes": _objects(
            "Volumes",
            "The task definition's volumes. `flowhook ecs pool --efs fs-…` sets the EFS data folder the gateway "
            f'shares: [{{"name": "{DATA_VOLUME}", "efsVolumeConfiguration": {{"fileSystemId": "fs-…", '
            '"rootDirectory": "/", "transitEncryption": "ENABLED"}}]. None with the S3 spool and DuckLake on S3.',
            values.volumes(),
        ),
        "mount_points": _objects(
            "Mount points",
            f'The container\'s mount points, e.g. [{{"sourceVolume": "{DATA_VOLUME}", "containerPath": '
            f'"{DEFAULT_DATA_DIR}"}}] (containerPath = the data folder).',
            values.mount_points(),
        ),
        "secrets": _objects(
            "Secrets",
            "Environment variables ECS sets from Secrets Manager or SSM with the execution role, e.g. "
            '[{"name": "FLOWHOOK_DUCKLAKE_CATALOG", "valueFrom": "arn:aws:secretsmanager:…"}]: '
            "passwords belong here, not in `env`.",
            [{"name": name, "valueFrom": arn} for name, arn in values.secrets.items()],
        ),
        "gateway_host": _string(
            "Gateway host",
            "The gateway's address as the task reaches it (FLOWHOOK_GATEWAY_HOST): "
            "the source deployments deliver their events through it.",
            values.gateway_host,
        ),
        "gateway_port": _string(
            "Gateway port", "The gateway's port (FLOWHOOK_GATEWAY_PORT).", str(values.gateway_port), pattern="^[0-9]+$"
        ),
        "subnets": _strings(
            "Subnets",
            "Subnets the task's network interface is placed in (awsvpc); they must reach the Prefect API, "
            "the gateway, S3 or EFS, and the image registry.",
            values.subnets,
            minItems=1,
        ),
        "security_groups": _strings(
            "Security groups", "Security groups of the task (none: the VPC's default group).", values.security_groups
        ),
        "assign_public_ip": {
            "title": "Assign public IP",
            "type": "string",
            "enum": ["ENABLED", "DISABLED"],
            "default": "ENABLED" if values.assign_public_ip else "DISABLED",
            "description": "ENABLED for a public subnet without a NAT gateway (to pull the image); else DISABLED.",
        },
    }


def _stock_overrides(values: PoolDefaults) -> dict[str, Any]:
    """New defaults of prefect-aws's own variables (None: keep its default)."""
    credentials = None
    if values.credentials_block_id is not None:
        credentials = {"$ref": {"block_document_id": values.credentials_block_id}}
    return {
        "image": values.image,
        "cpu": values.size.cpu,
        "memory": values.size.memory,
        "launch_type": "FARGATE",
        "cluster": values.cluster,
        "execution_role_arn": values.execution_role_arn,
        "task_role_arn": values.task_role_arn,
        "aws_credentials": credentials,
        "configure_cloudwatch_logs": values.cloudwatch_logs or None,
        "env": dict(values.env) or None,
    }


def base_job_template(values: PoolDefaults | None = None) -> dict[str, Any]:
    """The pool's base job template; with `values`, those are its variables' defaults."""
    from prefect_aws.workers.ecs_worker import ECSWorker

    values = values or PoolDefaults()
    template: dict[str, Any] = ECSWorker.get_default_base_job_template()
    stock: dict[str, Any] = template["variables"]["properties"]
    config: dict[str, Any] = template["job_configuration"]

    # The network lives in the run-task request (below): prefect-aws's way needs EC2 calls at each run.
    for name in ("vpc_id", "network_configuration"):
        del stock[name]
        del config[name]
    for name, default in _stock_overrides(values).items():
        if default is not None:
            stock[name]["default"] = default
    template["variables"]["properties"] = {**_flowhook_variables(values), **stock}
    template["variables"]["required"] = list(REQUIRED)

    # Merged under the `env` variable and the deployment's env, over the worker's own Prefect settings.
    config["env"] = {
        "PREFECT_API_URL": "{{ prefect_api_url }}",
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": HEARTBEAT_SECONDS,
        "FLOWHOOK_PREFECT_API_URL": "{{ prefect_api_url }}",
        "FLOWHOOK_DATA_DIR": "{{ data_dir }}",
        "FLOWHOOK_GATEWAY_HOST": "{{ gateway_host }}",
        "FLOWHOOK_GATEWAY_PORT": "{{ gateway_port }}",
    }
    task_definition = config["task_definition"]
    container = task_definition["containerDefinitions"][0]
    container["mountPoints"] = "{{ mount_points }}"
    container["secrets"] = "{{ secrets }}"
    task_definition["volumes"] = "{{ volumes }}"
    config["task_run_request"]["networkConfiguration"] = {
        "awsvpcConfiguration": {
            "subnets": "{{ subnets }}",
            "securityGroups": "{{ security_groups }}",
            "assignPublicIp": "{{ assign_public_ip }}",
        }
    }
    return template
