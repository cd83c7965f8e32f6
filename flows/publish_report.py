"""The reporting flow: rates and latency per event type, saved to DuckDB and shown in the UI."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flowhook.metrics import to_json_dict
from tasks.report import compute_report, publish_artifacts, save_report


@flow(name="publish-report", log_prints=True)
def publish_report(minutes: float = 60.0) -> dict[str, Any]:
    """Report on the last `minutes` minutes: compute, save to the store, publish as artifacts."""
    report = compute_report(minutes)
    save_report(report)
    publish_artifacts(report)
    summary = to_json_dict(report)
    print(f"report {report.report_id}: {len(report.rows) - 1} event types")
    return summary
