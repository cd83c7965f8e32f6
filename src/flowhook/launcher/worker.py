"""The `flowhook` Prefect worker type: a ProcessWorker whose flow-run processes are forked from a warm
template (milliseconds and a few MB instead of seconds of imports), and which hears of a new run from
Prefect's event stream instead of waiting for its next poll."""

from __future__ import annotations

import contextlib
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
from prefect.flows import load_flow_from_flow_run
from prefect.runner._flow_run_executor import FlowRunExecutionResult, FlowRunExecutorContext
from prefect.runner._process_manager import ProcessHandle
from prefect.utilities.processutils import command_from_string
from prefect.workers.process import ProcessJobConfiguration, ProcessWorker, ProcessWorkerResult

from flowhook.launcher.announced import ScheduledRunListener
from flowhook.launcher.starter import ForkStarter, settings_environment, template_environment
from flowhook.launcher.templates import TemplateError, Templates
from flowhook.launcher.tls import share_prefect_tls_contexts

if TYPE_CHECKING:
    from uuid import UUID

    from prefect.client.schemas.objects import FlowRun

WORKER_TYPE = "flowhook"


def runs_the_engine(configuration: ProcessJobConfiguration) -> bool:
    """Whether the job's command is Prefect's engine (what a template can fork); any other command is
    spawned as the process worker would."""
    if configuration.command is None:
        return True
    argv = command_from_string(configuration.command)
    return len(argv) == 3 and Path(argv[0]).name.startswith("python") and argv[1:] == ["-m", "prefect.engine"]


def _event_modules() -> list[str]:
    from flowhook.settings import Settings

    try:
        return list(Settings().event_modules)
    except Exception:  # a bad FLOWHOOK_* value: the runs will say so; the template imports no user module
        return []


class FlowhookJobConfiguration(ProcessJobConfiguration):
    """Prefect's process job configuration, its base environment rendered once per settings object."""

    @classmethod
    def _base_environment(cls) -> dict[str, str]:
        return settings_environment()


class FlowhookWorker(ProcessWorker):
    """Executes flow runs as processes forked from a warm template (`prefect worker start --type flowhook`)."""

    type = WORKER_TYPE
    job_configuration = FlowhookJobConfiguration
    _description = (
        "Executes flow runs as processes forked from a warm template that has already imported Prefect and "
        "the project, so a run starts in milliseconds; hears of new runs from the event stream."
    )
    _display_name = "flowhook (warm process)"
    _documentation_url = ""  # the README's "How it works" says what it does

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.templates = Templates(
            root=Path.cwd(), event_modules=_event_modules(), logger=self._logger, env=template_environment
        )
        self._background: anyio.CancelScope | None = None
        self._listener = ScheduledRunListener(self)

    async def setup(self) -> None:
        # Each run's executor builds Prefect clients here too: one TLS context per CA file for all of them.
        share_prefect_tls_contexts()
        await super().setup()
        assert self._runs_task_group is not None
        self._background = anyio.CancelScope()
        self._runs_task_group.start_soon(self._background_loops)

    async def teardown(self, *exc_info: Any) -> None:
        if self._background is not None:
            self._background.cancel()
        try:
            await super().teardown(*exc_info)
        finally:
            self.templates.close()

    async def _background_loops(self) -> None:
        """The event-stream listener and the template keeper, until teardown."""
        assert self._background is not None
        with self._background:
            async with anyio.create_task_group() as group:
                group.start_soon(self._listener.run)
                group.start_soon(self._keep_warm)

    async def _keep_warm(self, interval: float = 2.0) -> None:
        """Start the template now, and replace it as soon as the code changes, not at the next run."""
        while True:
            with contextlib.suppress(TemplateError):
                await self.templates.get()
            await anyio.sleep(interval)

    async def _give_worker_labels_to_flow_run(self, flow_run_id: UUID) -> None:
        """In the background: the labels name the worker for the UI. A run need not wait for one more write on
        Prefect's database (on SQLite, under load, a write can wait or be refused 503 for minutes of retries),
        nor crash before it starts when the write fails, as it would in Prefect's own submit path."""
        assert self._runs_task_group is not None
        self._runs_task_group.start_soon(self._label_flow_run, flow_run_id)

    async def _label_flow_run(self, flow_run_id: UUID) -> None:
        try:
            await super()._give_worker_labels_to_flow_run(flow_run_id)
        except Exception as exc:
            self._logger.warning("could not label flow run %s with this worker: %s", flow_run_id, exc)

    async def run(
        self,
        flow_run: FlowRun,
        configuration: ProcessJobConfiguration,
        task_status: anyio.abc.TaskStatus[int] | None = None,
    ) -> ProcessWorkerResult:
        if not runs_the_engine(configuration):
            return await super().run(flow_run, configuration, task_status)
        run_logger = self.get_flow_run_logger(flow_run)
        try:
            template = await self.templates.get()
        except TemplateError as exc:
            # Never a stuck run: started cold, as the process worker would, it fails with its own traceback.
            run_logger.error("No warm template (%s); starting this run in a new process instead.", exc)
            return await super().run(flow_run, configuration, task_status)
        for warning in template.warnings:
            run_logger.error("%s", warning)
        return await self._run_forked(flow_run, configuration, template, task_status or anyio.TASK_STATUS_IGNORED)

    async def _run_forked(
        self,
        flow_run: FlowRun,
        configuration: ProcessJobConfiguration,
        template: Any,
        task_status: anyio.abc.TaskStatus[int],
    ) -> ProcessWorkerResult:
        """ProcessWorker.run's steps with a ForkStarter: Prefect's executor proposes the states, watches
        for cancellation and marks the run Crashed when its process dies without an outcome."""
        working_dir_ctx = (
            tempfile.TemporaryDirectory(suffix="prefect")
            if not configuration.working_dir
            else contextlib.nullcontext(configuration.working_dir)
        )
        execution: FlowRunExecutionResult | None = None
        with working_dir_ctx as working_dir, warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            async with FlowRunExecutorContext() as ctx:
                starter = ForkStarter(
                    template=template,
                    cwd=Path(working_dir).resolve(),
                    env=configuration.env,
                    control_channel=ctx.control_channel,
                )
                executor = ctx.create_executor(
                    flow_run, starter, resolve_flow=load_flow_from_flow_run, propose_submitting=False
                )

                async def execute(*, task_status: anyio.abc.TaskStatus[ProcessHandle]) -> None:
                    nonlocal execution
                    execution = await executor.submit(task_status=task_status)

                async with anyio.create_task_group() as group:
                    handle: ProcessHandle = await group.start(execute)
                    if handle.pid is None:
                        raise RuntimeError("Flow run process has no PID")
                    task_status.started(handle.pid)
        if execution is None or execution.status_code is None:
            raise RuntimeError("Failed to start flow run process.")
        return ProcessWorkerResult(status_code=execution.status_code, identifier=str(execution.handle.pid))
