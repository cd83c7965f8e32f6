"""The worker's side of the warm template (launcher.template): start one, ask it to fork, hear of exits,
and replace it when the code it imported changed or it died."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import anyio

from flowhook.launcher.fingerprint import code_paths, fingerprint

LOST_EXIT_CODE = -1
"""The exit code reported for a child whose template died before it: its real status is lost."""


class TemplateError(RuntimeError):
    """No warm template could be had (it failed to import, died, or did not answer)."""


class ForkedProcess:
    """A flow-run process forked by a template: what Prefect's ProcessHandle reads (`pid`, `returncode`)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.pid: int | None = None
        self.returncode: int | None = None
        self._loop = loop
        self._forked: asyncio.Future[int] = loop.create_future()
        self._exited = asyncio.Event()

    def _set(self, future: asyncio.Future[int], pid: int | None, error: str | None) -> None:
        if future.done():
            return
        if error is None and pid is not None:
            future.set_result(pid)
        else:
            future.set_exception(TemplateError(error or "the template gave no process id"))

    def forked(self, pid: int | None, error: str | None = None) -> None:
        """Called by the reader thread when the template answered the fork request."""
        self.pid = pid
        self._loop.call_soon_threadsafe(self._set, self._forked, pid, error)

    def exited(self, code: int) -> None:
        """Called by the reader thread when the template reaped the process."""
        self.returncode = code
        self._loop.call_soon_threadsafe(self._exited.set)

    async def wait_forked(self, timeout: float) -> int:
        with anyio.fail_after(timeout):
            return await self._forked

    async def wait(self) -> int:
        await self._exited.wait()
        assert self.returncode is not None
        return self.returncode


class TemplateProcess:
    """One template process: requests on its stdin, replies read by a thread from its stdout."""

    def __init__(self, argv: Sequence[str], *, cwd: Path, env: dict[str, str], code_fingerprint: str) -> None:
        self.fingerprint = code_fingerprint
        self.started = time.monotonic()
        self.warnings: list[str] = []
        self.error: str | None = None
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._next_id = 0
        self._requests: dict[int, ForkedProcess] = {}
        self._children: dict[int, ForkedProcess] = {}
        self._proc = subprocess.Popen(
            list(argv), cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._stdin: IO[bytes] = self._proc.stdin
        self._reader = threading.Thread(
            target=self._read, args=(self._proc.stdout,), name="flowhook-template-reader", daemon=True
        )
        self._reader.start()

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None and not self._stdin.closed and self.error is None

    @property
    def running(self) -> bool:
        """Whether its process has yet to exit (a retired template runs until its last child has)."""
        return self._proc.poll() is None

    @property
    def children(self) -> int:
        return len(self._children)

    def wait_ready(self, timeout: float) -> None:
        """Block until the template has imported everything; raise TemplateError if it failed or took too long."""
        if not self._ready.wait(timeout):
            self.kill()
            raise TemplateError(f"the warm template did not get ready within {timeout:.0f} s")
        if self.error is not None:
            raise TemplateError(self.error)

    def fork(self, env: dict[str, str], cwd: str, loop: asyncio.AbstractEventLoop) -> ForkedProcess:
        """Ask for a child running the engine with `env` in `cwd`; its pid arrives on the returned object."""
        process = ForkedProcess(loop)
        with self._lock:
            if not self.alive:
                raise TemplateError("the warm template is not running")
            self._next_id += 1
            self._requests[self._next_id] = process
            line = json.dumps({"op": "fork", "id": self._next_id, "env": env, "cwd": cwd}).encode() + b"\n"
            try:
                self._stdin.write(line)
                self._stdin.flush()
            except (BrokenPipeError, ValueError) as exc:
                self._requests.pop(self._next_id, None)
                raise TemplateError(f"the warm template stopped listening: {exc}") from exc
        return process

    def retire(self) -> None:
        """No more forks: the template exits once its running children have (their statuses still come)."""
        with self._lock:
            if not self._stdin.closed:
                with contextlib.suppress(BrokenPipeError):
                    self._stdin.close()

    def kill(self) -> None:
        self.retire()
        if self._proc.poll() is None:
            self._proc.kill()

    def _read(self, stdout: IO[bytes]) -> None:
        for line in stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            self._handle(message)
        self._proc.wait()
        self._lost()

    def _handle(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "ready":
            self.warnings = list(message.get("warnings", []))
            self._ready.set()
        elif op == "failed":
            self.error = f"the warm template failed to import the project:\n{message.get('error', '')}".rstrip()
            self._ready.set()
        elif op in ("forked", "fork-failed"):
            with self._lock:
                process = self._requests.pop(int(message["id"]), None)
            if process is None:
                return
            if op == "forked":
                self._children[int(message["pid"])] = process
                process.forked(int(message["pid"]))
            else:
                process.forked(None, str(message.get("error")))
        elif op == "exited":
            process = self._children.pop(int(message["pid"]), None)
            if process is not None:
                process.exited(int(message["code"]))

    def _lost(self) -> None:
        """The template is gone: fail what it never answered; watch its orphans until they are gone too."""
        if self.error is None:
            self.error = f"the warm template exited (code {self._proc.returncode})"
        self._ready.set()
        with self._lock:
            requests, self._requests = list(self._requests.values()), {}
        for process in requests:
            process.forked(None, self.error)
        while self._children:
            for pid in list(self._children):
                if not _pid_exists(pid):
                    self._children.pop(pid).exited(LOST_EXIT_CODE)
            time.sleep(0.5)


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Templates:
    """The worker's current template: started at once, checked against the code's fingerprint before each
    fork, replaced when the code changed or it died. A template that failed to import is not retried with
    the same code for `retry_after` seconds: its error is raised at once instead."""

    def __init__(
        self,
        *,
        root: Path,
        event_modules: Sequence[str],
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger],
        env: Callable[[], dict[str, str]] = lambda: dict(os.environ),
        start_timeout: float = 120.0,
        retry_after: float = 30.0,
    ) -> None:
        self.root = root
        self.event_modules = list(event_modules)
        self._logger = logger
        self._env = env
        self._start_timeout = start_timeout
        self._retry_after = retry_after
        self._current: TemplateProcess | None = None
        self._failed: tuple[str, str, float] | None = None
        self._retired: list[TemplateProcess] = []
        self._lock: asyncio.Lock | None = None
        self.replaced = 0

    def fingerprint(self) -> str:
        return fingerprint(code_paths(self.root, self.event_modules))

    async def get(self) -> TemplateProcess:
        """A ready template for the code as it is now (starting one takes a few seconds)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            code = self.fingerprint()
            current = self._current
            if current is not None and current.alive and current.fingerprint == code:
                return current
            if current is not None:
                why = "the code changed" if current.alive else (current.error or "it stopped")
                self._logger.info("replacing the warm template (pid %s): %s", current.pid, why)
                current.retire()
                self._retired.append(current)
                self._current = None
                self.replaced += 1
            failed = self._failed
            if failed is not None and failed[0] == code and time.monotonic() - failed[2] < self._retry_after:
                raise TemplateError(failed[1])
            self._retired = [t for t in self._retired if t.running]
            self._current = await anyio.to_thread.run_sync(self._start, code)
            return self._current

    def _start(self, code: str) -> TemplateProcess:
        argv = [sys.executable, "-m", "flowhook.launcher.template", *self.event_modules]
        started = time.monotonic()
        template = TemplateProcess(argv, cwd=self.root, env=self._env(), code_fingerprint=code)
        try:
            template.wait_ready(self._start_timeout)
        except TemplateError as exc:
            self._failed = (code, str(exc), time.monotonic())
            self._logger.error("%s", exc)
            template.kill()
            raise
        self._failed = None
        self._logger.info("warm template ready (pid %s) in %.1f s", template.pid, time.monotonic() - started)
        for warning in template.warnings:
            self._logger.error("%s; runs of its event types will fail until it is fixed", warning)
        return template

    @property
    def current(self) -> TemplateProcess | None:
        return self._current

    def close(self) -> None:
        """Retire every template: each exits when its last child has."""
        for template in [*self._retired, *([self._current] if self._current else [])]:
            template.retire()
        self._retired.clear()
        self._current = None
