"""Build the pipeline report for a time window from the store (used by the flow and the CLI)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from flowhook.metrics import Report, build_report
from flowhook.store import DuckDBStore

REPORT_ARTIFACT_KEY = "flowhook-report"
REPORT_TABLE_KEY = "flowhook-report-table"


def window_report(db: DuckDBStore, *, minutes: float, now: datetime | None = None) -> Report:
    """The report over the last `minutes` minutes ending `now`."""
    end = now or datetime.now(UTC)
    start = end - timedelta(minutes=minutes)
    return build_report(
        db.event_times(since=start, until=end),
        window_start=start,
        window_end=end,
        generated_at=end,
        report_id=str(uuid.uuid4()),
    )
