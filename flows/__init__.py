"""Prefect flows, one file per deployment entrypoint in prefect.yaml; each reads like a recipe."""

from __future__ import annotations

from collections.abc import Callable

from prefect.runtime import flow_run

from flowhook.worker import run_names


def scheduled_name(label: str) -> Callable[[], str]:
    """A `flow_run_name` for a scheduled flow: `sweep · 17:58 UTC`, its nominal time, not an animal."""
    return lambda: run_names.at(label, flow_run.get_scheduled_start_time())
