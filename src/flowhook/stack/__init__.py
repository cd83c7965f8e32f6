"""The local stack: a Prefect server (SQLite), the `flowhook` work pool and its deployments, its workers and
the gateway, each a child process with its log under `<data>/logs/`.

Used by `flowhook up` / `flowhook demo` and by the end-to-end tests (on free ports). `config` says what the
stack is and picks ports, `supervisor` runs it, `processes` stops children for good, `local_sqs` makes a queue.
"""

from flowhook.stack.config import WORKER_TYPES, StackConfig, StackError, free_port, port_is_free
from flowhook.stack.supervisor import LocalStack

__all__ = ["WORKER_TYPES", "LocalStack", "StackConfig", "StackError", "free_port", "port_is_free"]
