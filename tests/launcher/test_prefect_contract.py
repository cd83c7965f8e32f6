"""Pins the parts of Prefect 3.9.1's private API the launcher relies on: if an upgrade changes one of them,
these fail, naming what to re-read (see src/flowhook/launcher and the notes on the warm worker)."""

from __future__ import annotations

import atexit
import hashlib
import inspect
import re
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import prefect
import prefect.engine
from prefect.runner import _starter_engine
from prefect.runner._control_channel import ControlChannel
from prefect.runner._flow_run_executor import FlowRunExecutorContext, ProcessStarter
from prefect.runner._process_manager import ProcessHandle, create_isolated_termination_scope
from prefect.workers.base import BaseWorker
from prefect.workers.process import ProcessWorker

from flowhook.launcher import FlowhookWorker

PROCESS_WORKER_RUN_SHA256 = "05306468a6b3266bf8eb7d679a792737d0decee4d43b23e382ca07508463ace3"
"""ProcessWorker.run as FlowhookWorker._run_forked copies it; a change there needs the same change here."""


def test_prefect_is_the_version_the_launcher_was_written_against() -> None:
    assert prefect.__version__ == "3.9.1"


def test_the_worker_type_is_registered_through_the_collections_entry_point() -> None:
    assert "flowhook" in BaseWorker.get_all_available_worker_types()
    assert BaseWorker.get_worker_class_from_type("flowhook") is FlowhookWorker
    assert issubclass(FlowhookWorker, ProcessWorker)


def test_process_worker_run_is_unchanged_since_the_fork_path_copied_it() -> None:
    source = inspect.getsource(ProcessWorker.run)
    assert hashlib.sha256(source.encode()).hexdigest() == PROCESS_WORKER_RUN_SHA256, (
        "prefect.workers.process.ProcessWorker.run changed: compare it with FlowhookWorker._run_forked"
    )


def test_the_worker_labels_a_run_through_the_method_the_launcher_moves_to_the_background() -> None:
    source = inspect.getsource(BaseWorker._submit_run_and_capture_errors)
    assert "await self._give_worker_labels_to_flow_run(flow_run.id)" in source
    params = inspect.signature(BaseWorker._give_worker_labels_to_flow_run).parameters
    assert list(params) == list(inspect.signature(FlowhookWorker._give_worker_labels_to_flow_run).parameters)


def test_the_starter_contract_and_the_handle_read_pid_and_returncode_from_any_object() -> None:
    assert list(inspect.signature(ProcessStarter.start).parameters) == ["self", "flow_run", "task_status"]
    params = inspect.signature(FlowRunExecutorContext.create_executor).parameters
    assert {"flow_run", "starter", "resolve_flow", "propose_submitting"} <= set(params)
    process = SimpleNamespace(pid=4242, returncode=None)
    handle = ProcessHandle(cast(Any, process), termination_scope=create_isolated_termination_scope(4242))
    assert handle.pid == 4242 and handle.returncode is None
    process.returncode = -9
    assert handle.returncode == -9
    scope = handle.termination_scope
    assert all(callable(getattr(scope, name)) for name in ("is_alive", "graceful_kill", "hard_kill"))
    assert callable(ControlChannel.register) and callable(ControlChannel.unregister)


def test_the_engine_starter_sets_the_variables_the_fork_starter_sets() -> None:
    names = set(re.findall(r'"(PREFECT__[A-Z_]+)"', inspect.getsource(_starter_engine)))
    # Ours: all but the storage path and the entrypoint, which a process worker run does not set.
    assert names == {
        "PREFECT__FLOW_RUN_ID",
        "PREFECT__ENABLE_CANCELLATION_AND_CRASHED_HOOKS",
        "PREFECT__CONTROL_PORT",
        "PREFECT__CONTROL_TOKEN",
        "PREFECT__DEPLOYMENT_NAME",
        "PREFECT__STORAGE_BASE_PATH",
        "PREFECT__FLOW_ENTRYPOINT",
    }


def test_the_engine_main_reads_the_run_from_the_environment_and_configures_the_control_channel() -> None:
    main = Path(inspect.getfile(prefect.engine)).read_text().split('if __name__ == "__main__":', 1)[1]
    assert 'os.environ.get("PREFECT__FLOW_RUN_ID")' in main and "configure_from_env()" in main


def test_the_child_side_hooks_exist() -> None:
    from prefect.context import refresh_global_settings_context
    from prefect.logging.configuration import setup_logging

    assert callable(refresh_global_settings_context) and callable(setup_logging)
    assert callable(getattr(threading, "_shutdown", None)) and callable(getattr(atexit, "_run_exitfuncs", None))


def test_the_base_worker_has_what_the_event_stream_listener_uses() -> None:
    worker = FlowhookWorker(work_pool_name="contract")
    for name in ("_submitting_flow_run_ids", "_work_pool", "_work_queues", "_prefetch_seconds", "_runs_task_group"):
        assert hasattr(worker, name), name
    params = inspect.signature(BaseWorker._submit_scheduled_flow_runs).parameters
    assert list(params) == ["self", "flow_run_response"]


def test_a_job_configuration_takes_its_base_environment_from_the_method_the_launcher_caches() -> None:
    from prefect.workers.base import BaseJobConfiguration

    assert "**self._base_environment()" in inspect.getsource(BaseJobConfiguration.prepare_for_flow_run)
    assert "to_environment_variables(exclude_unset=True)" in inspect.getsource(BaseJobConfiguration._base_environment)
