"""`flowhook gateway --workers N`: N gateway processes serving one port, bound once by a pre-fork master.

The master binds the socket, starts N children that each build their own app (`create_app`, with the bounded
protocol of `server_config`) and serve on the inherited socket, and starts a child again when one dies. The
children share the spool safely (`flowhook.spool.slots`); the kernel spreads connections over their accepts.

uvicorn's own `Multiprocess` supervisor is not used: it pickles the `Config` into each child, and the gateway's
protocol class is made per app at run time (it carries the app's recorder), so it cannot be pickled.
With N = 1 no master runs: the one process serves as it always did.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from types import FrameType

from flowhook.settings import Settings, get_settings

logger = logging.getLogger(__name__)

STOP_SECONDS = 20.0
"""How long a stopping master waits for its children to seal their batches and exit, before killing them."""


def serve(settings: Settings, workers: int) -> None:
    """Serve the gateway with `workers` processes (in this process when 1), until SIGINT or SIGTERM."""
    if workers <= 1:
        _serve_here(settings, None)
        return
    sock = socket.create_server((settings.gateway_host, settings.gateway_port), backlog=2048)
    sock.set_inheritable(True)
    Master(sock, workers).run()


def _serve_here(settings: Settings, sock: socket.socket | None) -> None:
    import uvicorn

    from flowhook.gateway import create_app
    from flowhook.gateway.http import server_config

    server = uvicorn.Server(server_config(create_app(settings), settings))
    settle_heap()
    server.run(sockets=[sock] if sock is not None else None)


def settle_heap() -> None:
    """Take what the process built to serve (modules, the app) out of the cyclic collector's sight.

    A full collection walks every tracked object: in a serving gateway with its imports that took 0.2-0.5 s
    every ~11 s under load, the event loop stopped meanwhile, and it was the acks' p99. Frozen objects are
    still freed by reference counting; only cycles among them are never collected, and they live as long as
    the process anyway.
    """
    gc.collect()
    gc.freeze()


class Master:
    """Starts the children, starts a dead one again, and stops them all on SIGINT or SIGTERM."""

    def __init__(self, sock: socket.socket, workers: int, *, restart_seconds: float = 0.5) -> None:
        self.sock = sock
        self.workers = workers
        self.restart_seconds = restart_seconds
        self.children: list[subprocess.Popen[bytes]] = []
        self._stop = threading.Event()

    def _start(self) -> subprocess.Popen[bytes]:
        fd = self.sock.fileno()
        command = [sys.executable, "-m", "flowhook.gateway.workers", str(fd), str(os.getpid())]
        return subprocess.Popen(command, pass_fds=(fd,))

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop.set()

    def run(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_signal)
        self.children = [self._start() for _ in range(self.workers)]
        logger.warning("gateway master %d: %d processes on one port", os.getpid(), self.workers)
        while not self._stop.wait(self.restart_seconds):
            for index, child in enumerate(self.children):
                if child.poll() is not None:
                    logger.warning("gateway process %d exited (%s); starting another", child.pid, child.returncode)
                    self.children[index] = self._start()
        self.stop()

    def stop(self) -> None:
        """SIGTERM to every child (each seals its open batches), then SIGKILL to any still running."""
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for child in self.children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self.sock.close()


def _exit_with(parent: int) -> None:
    """Stop this child (as SIGTERM would) once its master is gone, so none outlives a killed master."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)


def _child(fd: int, parent: int) -> None:
    sock = socket.socket(fileno=fd)
    threading.Thread(target=_exit_with, args=(parent,), name="master-watch", daemon=True).start()
    _serve_here(get_settings(), sock)


if __name__ == "__main__":
    _child(int(sys.argv[1]), int(sys.argv[2]))
