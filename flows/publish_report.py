"""The reporting flow: rates, latency and capacity per event type, saved to DuckDB and shown in the UI."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flowhook.metrics import to_json_dict
from flowhook.settings import get_settings
from tasks.report import compute_report, draw_chart, publish_artifacts, save_report


@flow(name="publish-report", log_prints=True)
def publish_report(
    minutes: float = 60.0, bucket_seconds: float | None = None, target_p99_seconds: float | None = None
) -> dict[str, Any]:
    """Report on the last `minutes` minutes: compute, chart, save to the store, publish as artifacts."""
    settings = get_settings()
    report = compute_report(
        minutes,
        bucket_seconds or settings.report_bucket_seconds,
        target_p99_seconds or settings.report_target_p99_seconds,
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
