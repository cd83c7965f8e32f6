"""Tasks of the reporting flow."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from prefect import task
from prefect.artifacts import create_image_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE

from flowhook.metrics import Report, Window, to_markdown, to_store_rows, to_table_rows
from flowhook.reporting import (
    REPORT_ARTIFACT_KEY,
    REPORT_CHART_KEY,
    REPORT_TABLE_KEY,
    chart_url,
    window_report,
)
from flowhook.settings import get_settings
from flowhook.spool import open_spool
from flowhook.uptime import started_at
from tasks import IO_RETRIES, Bulk, current_store


@task(cache_policy=NONE, **IO_RETRIES)
def compute_report(
    minutes: float, bucket_seconds: float, target_p99_seconds: float, *, since: datetime | None = None
) -> Bulk[Report]:
    settings = get_settings()
    if since is None:
        window = Window.last(minutes, bucket_seconds=bucket_seconds)
    else:  # a window that starts where its load did (the demo's), however late this run started
        window = Window(since, datetime.now(UTC), bucket_seconds=bucket_seconds)
    spool = open_spool(settings)
    return Bulk(
        window_report(
            current_store(),
            spool,
            window,
            target_p99_seconds=target_p99_seconds,
            heartbeat_max_age_seconds=settings.heartbeat_max_age_seconds,
            up_since=started_at(settings.data_dir),
            samples_dir=settings.samples_dir,
        )
    )


@task(cache_policy=NONE)
def draw_chart(report: Bulk[Report]) -> Path:
    from flowhook.metrics.chart import render_chart

    return render_chart(report.items, get_settings().reports_dir / f"{report.items.report_id}.png")


@task(cache_policy=NONE, **IO_RETRIES)
def save_report(report: Bulk[Report], chart: Path | None) -> None:
    current_store().write_report(to_store_rows(report.items, chart_path=None if chart is None else str(chart)))


@task(cache_policy=NONE, **IO_RETRIES)
def publish_artifacts(report: Bulk[Report], chart: Path | None) -> None:
    url = None if chart is None else chart_url(get_settings(), chart.name)
    create_markdown_artifact(
        markdown=to_markdown(report.items, chart_url=url),
        key=REPORT_ARTIFACT_KEY,
        description="flowhook report: λ, μ, θ, τ, latency per stage, backlog, Little's law and capacity forecast",
    )
    create_table_artifact(
        table=to_table_rows(report.items),
        key=REPORT_TABLE_KEY,
        description="flowhook report, one row per event type",
    )
    if url is not None:
        create_image_artifact(
            image_url=url, key=REPORT_CHART_KEY, description="Arrivals vs processing and latency per bucket"
        )
