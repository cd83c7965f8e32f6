"""The reporting flow: rates, latency and capacity per event type, saved to DuckDB and shown in the UI."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from flowhook.metrics import to_json_dict
from flowhook.settings import get_settings
from flowhook.worker import run_names
from tasks.report import compute_report, draw_chart, publish_artifacts, save_report


def report_run_name() -> str:
    """`report · last 60 min` or `report · since 17:54:12 UTC`."""
    parameters = flow_run.get_parameters()
    return run_names.report(parameters.get("minutes", 60.0), parameters.get("since"))


@flow(name="publish-report", flow_run_name=report_run_name, log_prints=True)
def publish_report(
    minutes: float = 60.0,
    bucket_seconds: float | None = None,
    target_p99_seconds: float | None = None,
    since: datetime | None = None,
) -> dict[str, Any]:
    """Report on the last `minutes` minutes (or from `since` until now): compute, chart, save, publish as artifacts."""
    settings = get_settings()
    report = compute_report(
        minutes,
        bucket_seconds or settings.report_bucket_seconds,
        target_p99_seconds or settings.report_target_p99_seconds,
        since=since,
    )
    chart = draw_chart(report)
    save_report(report, chart)
    publish_artifacts(report, chart)
    overall = report.items.rows[-1]
    print(
        f"report {report.items.report_id}: {len(report.items.rows) - 1} event types, "
        f"λ {overall.arrival_rate:.3g}/s, μ {overall.processing_rate:.3g}/s, chart {chart}"
    )
    summary = to_json_dict(report.items)
    summary.pop("buckets")  # the run's result stays small; the store has every bucket
    return summary
