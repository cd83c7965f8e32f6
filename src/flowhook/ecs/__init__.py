"""flowhook on AWS ECS (Fargate) through prefect-aws's ECS worker: the same deployments, another work pool.

Contract: `template` makes the `flowhook-ecs` pool's base job template (prefect-aws's default plus the
variables a task away from this machine needs: a reachable Prefect API URL, an optional EFS data folder, the
gateway, the network); `overlay` makes the ECS deploy file from the root prefect.yaml when it is deployed, so
its triggers never drift; `pool` creates the pool and deploys;
`render` shows what a flow run's ECS task would be. Nothing here calls AWS.
"""

from flowhook.ecs.overlay import TEMPLATE_FILE, ecs_overlay, overlay_text, template_text, worker_sizes
from flowhook.ecs.pool import PoolError, apply_pool, check_pool, credentials_block_id, deploy_argv
from flowhook.ecs.render import EcsRun, preview_flow_run, render_flow_run
from flowhook.ecs.template import (
    POOL_NAME,
    PROJECT_DIR,
    PoolDefaults,
    base_job_template,
    check_api_url,
    check_shared_data,
)
from flowhook.events.policies import TaskSize

__all__ = [
    "POOL_NAME",
    "PROJECT_DIR",
    "TEMPLATE_FILE",
    "EcsRun",
    "PoolDefaults",
    "PoolError",
    "TaskSize",
    "apply_pool",
    "base_job_template",
    "check_api_url",
    "check_pool",
    "check_shared_data",
    "credentials_block_id",
    "deploy_argv",
    "ecs_overlay",
    "overlay_text",
    "preview_flow_run",
    "render_flow_run",
    "template_text",
    "worker_sizes",
]
