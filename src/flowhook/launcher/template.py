"""The warm template: a process that imports Prefect, its engine, flowhook, `flows/*` and the event modules
once, then forks a child per flow run, which runs `prefect.engine` as `python -m prefect.engine` would.

Run as `python -m flowhook.launcher.template [EVENT_MODULE ...]` by the flowhook worker (launcher.templates),
which talks to it over its stdin and stdout in JSON lines:

    worker → template   {"op": "fork", "id": 7, "env": {...}, "cwd": "/tmp/x"}      stdin closed: retire
    template → worker   {"op": "ready", "pid": 1, "warnings": ["event module m: ImportError: ..."]}
                        {"op": "failed", "error": "<traceback>"}                      (then it exits)
                        {"op": "forked", "id": 7, "pid": 4242} / {"op": "fork-failed", "id": 7, "error": "..."}
                        {"op": "exited", "pid": 4242, "code": 0}    (code < 0: killed by that signal)

Forking is safe because the template holds no threads, sockets or event loops: it only imports and waits
on two pipes. It reaps its children and reports their exit statuses, so Prefect's crash detection and
cancellation stay in charge in the worker. Retired (stdin closed), it exits once its last child has.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import json
import os
import runpy
import selectors
import signal
import stat
import sys
import tempfile
import threading
import traceback
from pathlib import Path
from typing import Any, NoReturn

BASE_MODULES = (
    "prefect",
    "prefect.engine",
    "prefect.flow_engine",
    "prefect.task_engine",
    "prefect.flows",
    "prefect.tasks",
    "prefect.runtime",
    "prefect.artifacts",
    "prefect.context",
    "prefect.client.orchestration",
    "prefect.logging.handlers",
    "prefect.events.clients",
    "prefect.events.worker",
    "prefect._internal.control_listener",
    "prefect.deployments.steps",
    "prefect._internal.metrics",
    "flowhook",
    "flowhook.settings",
    "flowhook.worker.drain",
    "flowhook.events",
)
"""What every flow run needs; `flows/*.py` and the event modules are imported after these."""


def _reply(out: int, message: dict[str, Any]) -> None:
    data = json.dumps(message).encode() + b"\n"
    try:
        while data:
            data = data[os.write(out, data) :]
    except BrokenPipeError:
        pass  # the worker is gone; its flow runs live on, and we still reap them


def warm_up(root: Path, event_modules: list[str]) -> list[str]:
    """Import everything a flow run would; returns one warning per event module that failed to import
    (its runs will fail with the same error in their own logs). Any other failure raises."""
    for name in BASE_MODULES:
        importlib.import_module(name)
    # Prefect imports prefect.engine as a library module; the child runs a fresh copy as __main__.
    sys.modules.pop("prefect.engine", None)
    from flowhook.launcher.tls import share_prefect_tls_contexts

    share_prefect_tls_contexts()
    for path in sorted((root / "flows").glob("*.py")):
        importlib.import_module(f"flows.{path.stem}" if path.stem != "__init__" else "flows")
    warnings = []
    from flowhook.events import load_catalog

    for name in event_modules:
        try:
            load_catalog([name])
        except BaseException as exc:  # a user's module: any error, reported, never fatal to the template
            where = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            warnings.append(f"event module {name!r} failed to import: {where}")
    return warnings


def _close_sockets() -> None:
    """Close every socket this process inherited (the template should hold none; this makes sure)."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                os.close(fd)
        except OSError:
            continue


def _logging_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(("PREFECT_LOGGING_", "PREFECT_HOME"))}


SETTINGS_FILES = (".env", "prefect.toml", "pyproject.toml")
"""Files in the working directory that Prefect's settings read, besides the profiles file."""


def settings_sources() -> tuple[object, ...]:
    """Everything Prefect's settings are built from: the PREFECT_* variables (PREFECT__* are the engine's
    per-run parameters, which no setting reads), the settings files in the working directory and the
    profiles file, by size and time. Equal in the template and the child: the child keeps the template's
    settings instead of building them again (~80 ms of CPU a run)."""
    from prefect.settings import get_current_settings

    env = sorted((k, v) for k, v in os.environ.items() if k.startswith("PREFECT_") and not k.startswith("PREFECT__"))
    files = []
    for path in (*(Path(name) for name in SETTINGS_FILES), Path(get_current_settings().profiles_path)):
        with contextlib.suppress(OSError):
            st = path.stat()
            files.append((str(path), st.st_mtime_ns, st.st_size))
    return (tuple(env), tuple(files))


def settings_as_a_run_reads_them() -> tuple[object, ...]:
    """Build Prefect's settings as a run does, in an empty working directory (a worker starts each run in a
    new temporary one), and return what they were built from."""
    from prefect.context import refresh_global_settings_context

    here = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="flowhook-template-") as empty:
        os.chdir(empty)
        try:
            refresh_global_settings_context()
            return settings_sources()
        finally:
            os.chdir(here)


def run_child(request: dict[str, Any], inherited: list[int], settings_read_from: tuple[object, ...]) -> NoReturn:
    """In the forked child: become the flow-run process and run the engine; never returns.
    `settings_read_from` is what the template's Prefect settings were built from (`settings_sources`)."""
    code: Any = 1
    try:
        os.setsid()  # its own process group, so cancellation's group signals reach only this run
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        for fd in inherited:
            os.close(fd)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        _close_sockets()
        os.chdir(request["cwd"])
        logging_before = _logging_env()
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = ["prefect.engine"]

        from prefect.context import refresh_global_settings_context
        from prefect.logging.configuration import setup_logging

        from flowhook.settings import get_settings

        if settings_sources() != settings_read_from:
            refresh_global_settings_context()  # the template's settings were read from other sources
        if _logging_env() != logging_before:
            setup_logging()  # ~70 ms of CPU: only when the run's logging settings differ from the template's
        get_settings.cache_clear()
        sys.modules.pop("prefect.engine", None)
        runpy.run_module("prefect.engine", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = exc.code
    except BaseException:
        traceback.print_exc()
        code = 1
    _exit(code)


def _exit(code: Any) -> NoReturn:
    """Exit as the interpreter would, minus native destructors: join the threads and run the exit hooks
    (Prefect drains its log and event queues there), then leave. The template's native libraries (duckdb,
    pyarrow, OpenBLAS) own threads that only the template has; their C++ destructors would abort here."""
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    try:
        threading._shutdown()  # type: ignore[attr-defined]
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


class Template:
    """The fork loop: requests on stdin, replies and exit statuses on `out`, children reaped on SIGCHLD."""

    def __init__(self, out: int) -> None:
        self.out = out
        self.settings_read_from = settings_as_a_run_reads_them()
        self.children: set[int] = set()
        self.retired = False
        self._buffer = b""
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the worker retires us by closing stdin

    def serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(0, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not (self.retired and not self.children):
                for key, _ in selector.select(timeout=5.0):
                    if key.fd == self._wake_r:
                        os.read(self._wake_r, 4096)
                    elif not self._read_requests():
                        selector.unregister(0)
                        self.retired = True
                self._reap()

    def _read_requests(self) -> bool:
        chunk = os.read(0, 1 << 20)
        if not chunk:
            return False
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            if line.strip():
                self._fork(json.loads(line))
        return True

    def _fork(self, request: dict[str, Any]) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        gc.freeze()  # keep the imported objects' pages shared: collections in the child would dirty them
        try:
            pid = os.fork()
        except OSError as exc:
            _reply(self.out, {"op": "fork-failed", "id": request["id"], "error": f"fork: {exc}"})
            return
        if pid == 0:
            run_child(request, [self.out, self._wake_r, self._wake_w], self.settings_read_from)
        self.children.add(pid)
        _reply(self.out, {"op": "forked", "id": request["id"], "pid": pid})

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            self.children.discard(pid)
            _reply(self.out, {"op": "exited", "pid": pid, "code": os.waitstatus_to_exitcode(status)})


NATIVE_THREADS_OFF = {"OPENBLAS_NUM_THREADS": "1", "JE_ARROW_MALLOC_CONF": "background_thread:false"}
"""numpy's OpenBLAS and pyarrow's jemalloc start threads at import, which a forked child would lack: off.
(duckdb's library starts one that no setting turns off; forked children use duckdb regardless.)"""


def main() -> None:
    for name, value in NATIVE_THREADS_OFF.items():
        os.environ.setdefault(name, value)
    # Replies go to the pipe that was our stdout; our and our children's output goes where stderr goes
    # (the worker's log).
    out = os.dup(1)
    os.dup2(2, 1)
    root = Path.cwd()
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    modules = sys.argv[1:]  # the event modules to import
    try:
        warnings = warm_up(root, modules)
    except BaseException:
        _reply(out, {"op": "failed", "error": traceback.format_exc()})
        raise SystemExit(1) from None
    gc.collect()
    gc.freeze()
    template = Template(out)
    _reply(out, {"op": "ready", "pid": os.getpid(), "warnings": warnings})
    template.serve()


if __name__ == "__main__":
    main()
