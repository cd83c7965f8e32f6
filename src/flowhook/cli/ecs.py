"""Commands for the ECS (Fargate) work pool: create the pool, make its deploy file, deploy to it, render a run."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from flowhook.cli._app import app, console, fail, repo_root
from flowhook.cli.deployments import CheckOpt, generate_files
from flowhook.ecs.template import DEFAULT_IMAGE, POOL_NAME
from flowhook.events.builtin import USER_REQUEST
from flowhook.names import worker_deployment
from flowhook.settings import get_settings

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

    from flowhook.ecs import EcsRun

T = TypeVar("T")

ecs_app = typer.Typer(
    help="Run the same deployments on AWS ECS (Fargate) through prefect-aws's ECS worker.", no_args_is_help=True
)
app.add_typer(ecs_app, name="ecs")


def _api_url() -> str:
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        raise fail("PREFECT_API_URL is not set: point it at the Prefect server (e.g. http://127.0.0.1:4200/api)")
    return str(url)


def _with_client(body: Callable[[PrefectClient], Awaitable[T]]) -> T:
    """Run `body` with a client of the configured Prefect server; its errors become sentences."""
    import httpx
    from prefect.client.orchestration import get_client

    from flowhook.ecs import PoolError

    api = _api_url()

    async def run() -> T:
        async with get_client() as client:
            return await body(client)

    try:
        return asyncio.run(run())
    except (PoolError, ValueError) as exc:
        raise fail(str(exc)) from None
    except httpx.HTTPError as exc:
        from flowhook.prefect_api import explain, refused

        if refused(exc):
            raise fail(explain(exc, api)) from None
        raise fail(f"the Prefect API at {api} failed: {type(exc).__name__}: {exc}") from None


@ecs_app.command()
def generate(check: CheckOpt = False) -> None:
    """The same as `flowhook deployments generate`: prefect.yaml's per-type block and the pool's job template."""
    generate_files(check=check)


@ecs_app.command()
def pool(
    api_url: Annotated[str, typer.Option(help="The Prefect API as ECS tasks reach it (their PREFECT_API_URL).")],
    subnet: Annotated[list[str], typer.Option(help="A subnet of the tasks (repeat for more).")],
    gateway_host: Annotated[str, typer.Option(help="The gateway's address as ECS tasks reach it.")],
    efs: Annotated[
        str | None,
        typer.Option(
            help="EFS file system id (fs-…) of a data folder the gateway shares; not needed with S3 + DuckLake."
        ),
    ] = None,
    spool_url: Annotated[
        str | None, typer.Option(help="s3://bucket/prefix: the S3 spool (FLOWHOOK_SPOOL_URL); the task role reads it.")
    ] = None,
    store: Annotated[
        str | None, typer.Option(help="'ducklake' for a store tasks share (FLOWHOOK_STORE); catalog via --secret.")
    ] = None,
    ducklake_data_path: Annotated[
        str | None, typer.Option(help="s3://bucket/lake/: DuckLake's Parquet files (FLOWHOOK_DUCKLAKE_DATA_PATH).")
    ] = None,
    image: Annotated[str, typer.Option(help="The image built from deployments/ecs/Dockerfile.")] = DEFAULT_IMAGE,
    gateway_port: Annotated[int, typer.Option(help="The gateway's port.")] = 8000,
    security_group: Annotated[list[str] | None, typer.Option(help="A security group (repeat for more).")] = None,
    public_ip: Annotated[bool, typer.Option(help="Give tasks a public IP (public subnet, no NAT).")] = True,
    cluster: Annotated[str | None, typer.Option(help="ECS cluster name or ARN (default: 'default').")] = None,
    execution_role_arn: Annotated[str | None, typer.Option(help="Role ECS pulls the image and logs with.")] = None,
    task_role_arn: Annotated[str | None, typer.Option(help="Role the flow run's code runs with.")] = None,
    credentials_block: Annotated[
        str | None, typer.Option(help="AwsCredentials block the worker uses (default: its own AWS environment).")
    ] = None,
    cloudwatch_logs: Annotated[bool, typer.Option(help="Send task output to CloudWatch (needs the role).")] = False,
    cpu: Annotated[int, typer.Option(help="Default CPU units of a task (the worker deployments set their own).")] = 512,
    memory: Annotated[int, typer.Option(help="Default memory of a task in MiB.")] = 1024,
    env: Annotated[
        list[str] | None,
        typer.Option(help="NAME=VALUE for every task, e.g. FLOWHOOK_SQS__QUEUE_URL; stored in the pool: no passwords."),
    ] = None,
    secret: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=ARN: ECS sets NAME from a Secrets Manager secret or SSM parameter (needs the execution role), "
            "e.g. FLOWHOOK_DUCKLAKE_CATALOG or FLOWHOOK_DUCKLAKE_S3_SECRET."
        ),
    ] = None,
) -> None:
    """Create or update the `flowhook-ecs` work pool: flowhook's ECS job template with these as defaults.

    Tasks need a shared spool and store: --efs fs-…, or S3 (--spool-url, --store ducklake, --ducklake-data-path).
    """
    from flowhook.ecs import (
        PoolDefaults,
        TaskSize,
        apply_pool,
        base_job_template,
        check_shared_data,
        credentials_block_id,
    )

    if store not in (None, "duckdb", "ducklake"):
        raise fail(f"--store is 'duckdb' (the file, on EFS) or 'ducklake', not {store!r}")
    if spool_url is not None and not spool_url.startswith("s3://"):
        raise fail(f"--spool-url is an s3://bucket/prefix URL, not {spool_url!r}")
    named = {
        "FLOWHOOK_SPOOL_URL": spool_url,
        "FLOWHOOK_STORE": store,
        "FLOWHOOK_DUCKLAKE_DATA_PATH": ducklake_data_path,
    }
    task_env = {**dict(_pair(item, "--env") for item in env or []), **{k: v for k, v in named.items() if v}}
    try:
        values = PoolDefaults(
            image=image,
            prefect_api_url=api_url,
            subnets=tuple(subnet),
            security_groups=tuple(security_group or ()),
            assign_public_ip=public_ip,
            efs_file_system_id=efs,
            gateway_host=gateway_host,
            gateway_port=gateway_port,
            cluster=cluster,
            execution_role_arn=execution_role_arn,
            task_role_arn=task_role_arn,
            cloudwatch_logs=cloudwatch_logs,
            size=TaskSize(cpu, memory),
            env=task_env,
            secrets=dict(_pair(item, "--secret") for item in secret or []),
        )
        check_shared_data(values)
    except ValueError as exc:
        raise fail(str(exc)) from None

    async def create(client: PrefectClient) -> None:
        pool = values
        if credentials_block is not None:
            pool = replace(values, credentials_block_id=await credentials_block_id(client, credentials_block))
        await apply_pool(client, base_job_template(pool))

    _with_client(create)
    console.print(f"work pool {POOL_NAME!r} (ecs) is ready: image {image}, tasks report to {api_url}")
    console.print(
        "next: `flowhook ecs deploy`, and a worker where AWS credentials are: "
        f"`prefect worker start --pool {POOL_NAME} --type ecs`"
    )


def _pair(item: str, option: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep or not name:
        raise fail(f"{option} {item!r} is not NAME=VALUE")
    return name, value


def _overlay() -> str:
    """The ECS deploy file, made now from prefect.yaml and the catalog's sizes; refused while prefect.yaml's
    generated block does not match the catalog (it would deploy other types than the gateway accepts)."""
    from flowhook.deployments import ROOT_FILE, stale_files
    from flowhook.ecs import overlay_text, worker_sizes
    from flowhook.events import load_catalog

    root = repo_root()
    catalog = load_catalog(get_settings().event_modules)
    if ROOT_FILE in stale_files(root, catalog):
        raise fail(f"{ROOT_FILE} is out of date: run `flowhook deployments generate` first")
    return overlay_text((root / ROOT_FILE).read_text(), sizes=worker_sizes(catalog))


@ecs_app.command()
def overlay(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write it here instead of stdout.")] = None,
) -> None:
    """Print prefect.yaml's deployments and triggers on the ECS pool, each type at its Fargate size: the file
    `flowhook ecs deploy` deploys, for `prefect deploy --all --prefect-file FILE` (run from the repo root)."""
    text = _overlay()
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)


@ecs_app.command()
def deploy() -> None:
    """`prefect deploy` every deployment of prefect.yaml, triggers included, to the ECS pool (`flowhook ecs
    overlay` shows the file it deploys)."""
    from flowhook.ecs import check_pool, deploy_argv

    text = _overlay()
    _with_client(check_pool)
    env = {**os.environ, "PREFECT_API_URL": _api_url()}
    with tempfile.TemporaryDirectory(prefix="flowhook-ecs-") as folder:
        prefect_file = Path(folder) / "prefect.yaml"
        prefect_file.write_text(text)
        done = subprocess.run(deploy_argv(prefect_file), cwd=repo_root(), env=env, check=False)
    if done.returncode != 0:
        raise fail(f"`prefect deploy` failed (exit {done.returncode}); its output is above")


@ecs_app.command()
def render(
    deployment: Annotated[str, typer.Argument(help=f"flow/deployment, e.g. {worker_deployment(USER_REQUEST)}.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the two AWS requests as JSON only.")] = False,
) -> None:
    """Show the task definition and RunTask request a flow run of the deployment would get (launches nothing)."""
    from flowhook.ecs import preview_flow_run, render_flow_run

    if "/" not in deployment:
        raise fail(f"name the deployment as flow/deployment, e.g. {worker_deployment(deployment)}")

    async def build(client: PrefectClient) -> EcsRun:
        from prefect.exceptions import ObjectNotFound

        try:
            found = await client.read_deployment_by_name(deployment)
        except ObjectNotFound:
            raise ValueError(f"this Prefect server has no deployment {deployment!r}") from None
        if found.work_pool_name != POOL_NAME:
            raise ValueError(f"{deployment!r} runs on the pool {found.work_pool_name!r}, not {POOL_NAME!r}")
        return await render_flow_run(client, preview_flow_run(found))

    run = _with_client(build)
    if as_json:
        typer.echo(json.dumps(run.to_json(), indent=2))
        return
    _summarise(run)
    console.print_json(json.dumps(run.to_json()))
    for problem in run.problems():
        console.print(f"[yellow]AWS would refuse this:[/] {problem}")


def _summarise(run: EcsRun) -> None:
    container, request = run.container(), run.run_task
    network = request.get("networkConfiguration", {}).get("awsvpcConfiguration", {})
    env = run.environment()
    console.print(
        f"[bold]launch type[/] {request.get('launchType', '-')}   [bold]cluster[/] {request.get('cluster', 'default')}"
    )
    console.print(
        f"[bold]cpu/memory[/] {request['overrides'].get('cpu')}/{request['overrides'].get('memory')}   "
        f"[bold]image[/] {(run.task_definition or {}).get('containerDefinitions', [{}])[0].get('image', '-')}"
    )
    console.print(f"[bold]command[/] {' '.join(container.get('command', []))}")
    console.print(
        f"[bold]PREFECT_API_URL[/] {env.get('PREFECT_API_URL', '(unset)')}   "
        f"[bold]subnets[/] {', '.join(network.get('subnets', [])) or '-'}"
    )
