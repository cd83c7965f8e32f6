"""Flow-run names, as the UI's run list shows them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from flowhook.worker import run_names

AT = datetime(2026, 11, 27, 17, 58, 30, tzinfo=UTC)


def test_a_worker_run_says_type_and_batch_size() -> None:
    assert run_names.batch("user_request", 250) == "user_request · 250 events"
    assert run_names.batch("user_request", 12_500) == "user_request · 12,500 events"
    assert run_names.batch("scheduled_tick", 1) == "scheduled_tick · 1 event"
    assert run_names.batch("data_update", None) == "data_update · ? events"


def test_a_scheduled_run_says_its_nominal_time_in_utc() -> None:
    assert run_names.at("sweep", AT) == "sweep · 17:58 UTC"
    assert run_names.at("sweep", AT.astimezone(timezone(timedelta(hours=2)))) == "sweep · 17:58 UTC"
    assert run_names.at("sweep", None) == "sweep"


def test_a_report_run_says_its_window() -> None:
    assert run_names.report(60.0, None) == "report · last 60 min"
    assert run_names.report(2.5, None) == "report · last 2.5 min"
    assert run_names.report(60.0, AT) == "report · since 17:58:30 UTC"
    assert run_names.report(60.0, "2026-11-27T17:58:30+00:00") == "report · since 17:58:30 UTC"
    assert run_names.report(60.0, "2026-11-27T17:58:30") == "report · since 17:58:30 UTC"
    assert run_names.report(60.0, "yesterday") == "report · since yesterday"
