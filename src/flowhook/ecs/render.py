"""What the ECS worker would send AWS for a flow run, rendered by prefect-aws's own code without calling AWS.

The job configuration comes from `ECSJobConfiguration.resolve_for_flow_run` (pool template + deployment and
flow-run job variables, then `prepare_for_flow_run`: the environment, the command, the labels), exactly as
the worker builds it; the task definition and RunTask request from the worker's own preparation steps.
Those are private methods of prefect-aws (pinned at 0.7.12): what they produce is checked against
botocore's ECS API model by `EcsRun.problems`, and by the end-to-end test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.objects import FlowRun
    from prefect.client.schemas.responses import DeploymentResponse

RENDERER_NAME = "flowhook-ecs-render"
"""The worker name the rendering stands in for (a real worker's name appears in PREFECT__WORKER_NAME)."""


@dataclass(frozen=True)
class EcsRun:
    """The task definition the worker would register (None: the pool names an existing one) and its RunTask
    request. `run_task["taskDefinition"]` is the family; the worker puts the registered revision's ARN there.
    Prefect API keys and auth strings in the environment are masked."""

    task_definition: dict[str, Any] | None
    run_task: dict[str, Any]

    def container(self) -> dict[str, Any]:
        """The flow run's container override (command, environment, cpu, memory)."""
        overrides: list[dict[str, Any]] = self.run_task["overrides"]["containerOverrides"]
        return overrides[0]

    def environment(self) -> dict[str, str]:
        """The flow run container's environment."""
        return {item["name"]: item["value"] for item in self.container().get("environment", [])}

    def problems(self) -> list[str]:
        """What AWS would refuse for its shape (botocore's ECS model: names, types, required fields)."""
        import botocore.session
        from botocore.validate import ParamValidator

        model = botocore.session.get_session().get_service_model("ecs")
        requests = [("RunTask", self.run_task)]
        if self.task_definition is not None:
            requests.insert(0, ("RegisterTaskDefinition", self.task_definition))
        found = []
        for operation, params in requests:
            report = ParamValidator().validate(params, model.operation_model(operation).input_shape)
            if report.has_errors():
                found.append(f"{operation}: {report.generate_report()}")
        return found

    def to_json(self) -> dict[str, Any]:
        return {"task_definition": self.task_definition, "run_task": self.run_task}


def preview_flow_run(deployment: DeploymentResponse) -> FlowRun:
    """A flow run of the deployment that exists only here: rendering it launches nothing."""
    from prefect.client.schemas.objects import FlowRun

    return FlowRun(
        name="render-preview",
        flow_id=deployment.flow_id,
        deployment_id=deployment.id,
        parameters=dict(deployment.parameters),
        work_pool_name=deployment.work_pool_name,
    )


async def render_flow_run(client: PrefectClient, flow_run: FlowRun) -> EcsRun:
    """The ECS task a worker of the flow run's pool would start for it, as prefect-aws builds it."""
    from prefect_aws.workers.ecs_worker import ECSJobConfiguration, ECSWorker, mask_api_key

    if flow_run.deployment_id is None:
        raise ValueError(f"flow run {flow_run.id} has no deployment, so no work pool to render it for")
    deployment = await client.read_deployment(flow_run.deployment_id)
    if deployment.work_pool_name is None:
        raise ValueError(f"deployment {deployment.name!r} has no work pool")
    pool = await client.read_work_pool(deployment.work_pool_name)
    configuration = await ECSJobConfiguration.resolve_for_flow_run(
        flow_run, client=client, work_pool=pool, worker_name=RENDERER_NAME, deployment=deployment
    )
    worker = ECSWorker(work_pool_name=pool.name)
    arn = configuration.task_run_request.get("taskDefinition")
    task_definition: dict[str, Any] | None = None
    if not arn:
        credentials = configuration.aws_credentials
        region = (credentials.get_boto3_session().region_name if credentials else None) or "us-east-1"
        task_definition = worker._prepare_task_definition(configuration, region=region, flow_run=flow_run)
        arn = task_definition["family"]
    run_task = worker._prepare_task_run_request(configuration, task_definition or {}, arn, task_definition is not None)
    masked: dict[str, Any] = mask_api_key(run_task)  # type: ignore[no-untyped-call]  # prefect-aws leaves it untyped
    return EcsRun(task_definition=task_definition, run_task=masked)
