"""The `flowhook-ecs` work pool on a Prefect server: create or update it, find its AWS credentials, deploy to it.

No AWS call is made here: a pool and its deployments are Prefect objects; AWS is only reached by the
ECS worker (`prefect worker start --pool flowhook-ecs --type ecs`) when it launches a flow run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowhook.ecs.template import POOL_NAME

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.objects import WorkPool

POOL_TYPE = "ecs"
CREDENTIALS_BLOCK_TYPE = "aws-credentials"
DESCRIPTION = (
    "flowhook on AWS ECS (Fargate): prefect.yaml's deployments (`flowhook ecs deploy`), "
    "image from deployments/ecs/Dockerfile."
)


class PoolError(RuntimeError):
    """The pool cannot be made or used as asked; the message says why and what to do."""


async def credentials_block_id(client: PrefectClient, name: str) -> str:
    """The id of the `AwsCredentials` block `name`, for the pool's `aws_credentials` default."""
    from prefect.exceptions import ObjectNotFound

    try:
        block = await client.read_block_document_by_name(name, block_type_slug=CREDENTIALS_BLOCK_TYPE)
    except ObjectNotFound:
        raise PoolError(
            f"no AwsCredentials block is named {name!r} on this Prefect server; create one first, e.g. "
            f"`AwsCredentials(region_name='eu-west-1').save({name!r})` (prefect_aws), or leave the option out "
            "and let the worker use its own AWS credentials"
        ) from None
    return str(block.id)


async def apply_pool(client: PrefectClient, base_job_template: dict[str, Any], *, name: str = POOL_NAME) -> WorkPool:
    """Create the ECS pool with this template, or replace the template of the pool of that name."""
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    try:
        existing = await client.read_work_pool(name)
    except ObjectNotFound:
        existing = None
    if existing is not None and existing.type != POOL_TYPE:
        raise PoolError(f"the work pool {name!r} exists with type {existing.type!r}, not {POOL_TYPE!r}: name another")
    pool = WorkPoolCreate(name=name, type=POOL_TYPE, base_job_template=base_job_template, description=DESCRIPTION)
    return await client.create_work_pool(pool, overwrite=True)


async def check_pool(client: PrefectClient, name: str = POOL_NAME) -> WorkPool:
    """The ECS pool the overlay deploys to; PoolError when it is missing or of another type."""
    from prefect.exceptions import ObjectNotFound

    try:
        pool = await client.read_work_pool(name)
    except ObjectNotFound:
        raise PoolError(f"this Prefect server has no work pool {name!r}: make it with `flowhook ecs pool`") from None
    if pool.type != POOL_TYPE:
        raise PoolError(f"the work pool {name!r} has type {pool.type!r}, not {POOL_TYPE!r}")
    return pool


def deploy_argv(prefect_file: Path) -> list[str]:
    """`prefect deploy` of every deployment of the overlay at `prefect_file`; run it from the repository root."""
    return [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_file)]
