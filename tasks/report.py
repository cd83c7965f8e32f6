"""Tasks of the reporting flow."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE

from flowhook.metrics import Report, to_markdown, to_store_rows, to_table_rows
from flowhook.reporting import REPORT_ARTIFACT_KEY, REPORT_TABLE_KEY, window_report
from flowhook.settings import get_settings
from flowhook.store import DuckDBStore
from tasks import IO_RETRIES


def _store() -> DuckDBStore:
    settings = get_settings()
    return DuckDBStore(settings.database, lock_timeout=settings.lock_timeout_seconds)


@task(cache_policy=NONE, **IO_RETRIES)
def compute_report(minutes: float) -> Report:
    return window_report(_store(), minutes=minutes)


@task(cache_policy=NONE, **IO_RETRIES)
def save_report(report: Report) -> None:
    _store().write_report_rows(to_store_rows(report))


@task(cache_policy=NONE, **IO_RETRIES)
def publish_artifacts(report: Report) -> None:
    create_markdown_artifact(
        markdown=to_markdown(report),
        key=REPORT_ARTIFACT_KEY,
        description="flowhook pipeline report: λ, μ, θ, τ and measured latency per event type",
    )
    create_table_artifact(
        table=to_table_rows(report),
        key=REPORT_TABLE_KEY,
        description="flowhook pipeline report, one row per event type",
    )
