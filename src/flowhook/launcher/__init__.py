"""Launching flow runs: the `flowhook` Prefect worker type.

Registered through the `prefect.collections` entry point (pyproject.toml), so `prefect worker start
--type flowhook` and `prefect work-pool create --type flowhook` find it. It runs each flow run in a
process forked from a warm template (`launcher.template`) that has already imported Prefect, flowhook,
`flows/*` and the event modules; Prefect's own engine runs in the child, its executor in the worker, so
states, logs, heartbeats, cancellation and Crashed are Prefect's. The template is replaced when the code
changes (`launcher.fingerprint`) or it dies; a new run is heard of from the event stream
(`launcher.announced`), with the worker's poll as the fallback.
"""

from flowhook.launcher.worker import WORKER_TYPE, FlowhookWorker

__all__ = ["WORKER_TYPE", "FlowhookWorker"]
