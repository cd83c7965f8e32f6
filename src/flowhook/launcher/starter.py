"""A Prefect process starter that forks the flow-run process from a warm template instead of spawning
`python -m prefect.engine`: the same environment, control channel and handle as Prefect's own
EngineCommandStarter (runner/_starter_engine.py), so its crash detection and cancellation stay in charge."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import anyio
import anyio.abc
from prefect.runner._process_manager import ProcessHandle, create_isolated_termination_scope
from prefect.settings import get_current_settings
from prefect.utilities.processutils import sanitize_subprocess_env

from flowhook.launcher.templates import TemplateProcess

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun
    from prefect.runner._control_channel import ControlChannel

FORK_TIMEOUT_SECONDS = 30.0
"""How long the template may take to answer a fork request (it takes milliseconds)."""


_RENDERED: list[tuple[object, dict[str, str]]] = []  # (the settings object, its variables): the last one rendered


def settings_environment() -> dict[str, str]:
    """The current Prefect settings as the environment variables each run gets, rendered once per settings
    object: rendering every setting costs ~50 ms of CPU, and a worker did it twice a run (half its CPU)."""
    settings = get_current_settings()
    if not _RENDERED or _RENDERED[0][0] is not settings:
        _RENDERED[:] = [(settings, settings.to_environment_variables(exclude_unset=True))]
    return dict(_RENDERED[0][1])


def engine_environment(
    flow_run_id: str, *, job_env: dict[str, str | None], control_env: dict[str, str]
) -> dict[str, str]:
    """What `python -m prefect.engine` would get from Prefect's EngineCommandStarter: this process's
    environment, the job's, the current Prefect settings, then the run's own variables."""
    env: dict[str, str | None] = {**os.environ, **job_env}
    env.update(settings_environment())
    env.update(
        {
            "PREFECT__FLOW_RUN_ID": flow_run_id,
            "PREFECT__ENABLE_CANCELLATION_AND_CRASHED_HOOKS": "false",
            **control_env,
            "PREFECT__DEPLOYMENT_NAME": job_env.get("PREFECT__DEPLOYMENT_NAME"),
        }
    )
    return sanitize_subprocess_env(env)


def template_environment() -> dict[str, str]:
    """The template's environment: a run's, less the job's and the run's own variables. Prefect settings
    built from it are a run's own unless its job sets PREFECT_* variables, so a child need not build them
    again (launcher.template.settings_sources)."""
    env: dict[str, str | None] = {**os.environ}
    env.update(settings_environment())
    return sanitize_subprocess_env(env)


class ForkStarter:
    """Starts one flow run as a child of `template` (Prefect's ProcessStarter protocol)."""

    def __init__(
        self,
        *,
        template: TemplateProcess,
        cwd: Path,
        env: dict[str, str | None],
        control_channel: ControlChannel | None,
    ) -> None:
        self._template = template
        self._cwd = cwd
        self._env = env
        self._control_channel = control_channel

    async def start(
        self, flow_run: FlowRun, task_status: anyio.abc.TaskStatus[ProcessHandle] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        control_env: dict[str, str] = {}
        registered = False
        if self._control_channel is not None:
            try:
                port, token = self._control_channel.register(flow_run.id)
                control_env = {"PREFECT__CONTROL_PORT": str(port), "PREFECT__CONTROL_TOKEN": token}
                registered = True
            except RuntimeError:
                pass  # no loopback listener: Prefect falls back to kill-only cancellation
        env = engine_environment(str(flow_run.id), job_env=self._env, control_env=control_env)
        try:
            process = self._template.fork(env, str(self._cwd), asyncio.get_running_loop())
            pid = await process.wait_forked(FORK_TIMEOUT_SECONDS)
        except BaseException:
            if registered and self._control_channel is not None:
                self._control_channel.unregister(flow_run.id)
            raise
        # The child called setsid: its pid is its process group, which cancellation signals as a whole.
        handle = ProcessHandle(cast(Any, process), termination_scope=create_isolated_termination_scope(pid))
        task_status.started(handle)
        await process.wait()
