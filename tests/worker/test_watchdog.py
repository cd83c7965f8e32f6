"""The trigger path's watchdog, pure: healthy / unhealthy / unknown, the boundaries, clock skew, the texts;
and the alert trigger in prefect.yaml, which must say what the setting says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger

from flowhook.settings import Settings
from flowhook.worker.watchdog import (
    ALERT_ARTIFACT_KEY,
    HEARTBEAT_EVENT,
    HEARTBEAT_RESOURCE,
    Heartbeat,
    alert_markdown,
    check_heartbeat,
    duration,
    is_heartbeat,
    stored_event_payload,
    to_json_dict,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
MAX_AGE = 660.0
ROOT = Path(__file__).resolve().parents[2]


def _ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def _check(
    stored_ago: float | None, *, sent_before: float = 3.1, up_for: float | None = None, max_age: float = MAX_AGE
) -> Heartbeat:
    """The status at NOW of a heartbeat stored `stored_ago` s ago, `sent_before` s after its tick (None: none)."""
    last = None if stored_ago is None else (_ago(stored_ago + sent_before), _ago(stored_ago))
    return check_heartbeat(last, now=NOW, max_age_seconds=max_age, up_since=None if up_for is None else _ago(up_for))


def test_a_recent_heartbeat_is_healthy_with_its_age_and_end_to_end_time() -> None:
    beat = _check(42, sent_before=3.1)
    assert beat.status == "healthy" and beat.healthy
    assert beat.age_seconds == pytest.approx(42)
    assert beat.end_to_end_seconds == pytest.approx(3.1)
    assert beat.last_stored == _ago(42) and beat.last_occurred == _ago(45.1)
    assert beat.summary == "healthy — last heartbeat stored 42 s ago, 3.1 s after it was sent"


def test_an_old_heartbeat_is_unhealthy_and_says_for_how_long() -> None:
    beat = _check(14 * 60)
    assert beat.status == "unhealthy" and not beat.healthy
    assert beat.age_seconds == pytest.approx(840)
    assert beat.summary == (
        "UNHEALTHY — no heartbeat stored for 14 min (max 11 min): "
        "a trigger, the worker or the Prefect server may be down"
    )


@pytest.mark.parametrize(
    ("stored_ago", "status"),
    [
        (0.0, "healthy"),
        (MAX_AGE - 0.001, "healthy"),
        (MAX_AGE, "healthy"),  # stored exactly max_age ago: still within it
        (MAX_AGE + 0.001, "unhealthy"),
        (10 * MAX_AGE, "unhealthy"),
    ],
)
def test_max_age_is_the_boundary(stored_ago: float, status: str) -> None:
    assert _check(stored_ago).status == status


@pytest.mark.parametrize(
    ("up_for", "status", "reason"),
    [
        (None, "unknown", "no heartbeat stored yet"),
        (60.0, "unknown", "no heartbeat stored yet (the stack has been up for 60 s, max 11 min)"),
        (MAX_AGE, "unknown", "no heartbeat stored yet (the stack has been up for 11 min, max 11 min)"),
        (
            MAX_AGE + 1,
            "unhealthy",
            "no heartbeat ever stored, and the stack has been up for 11 min (max 11 min): "
            "a trigger, the worker or the Prefect server may be down",
        ),
    ],
)
def test_never_seen_is_unknown_until_the_stack_has_been_up_longer_than_max_age(
    up_for: float | None, status: str, reason: str
) -> None:
    beat = _check(None, up_for=up_for)
    assert (beat.status, beat.reason) == (status, reason)
    assert not beat.healthy
    assert beat.last_stored is None and beat.age_seconds is None and beat.end_to_end_seconds is None
    assert beat.up_seconds == up_for


def test_a_stored_heartbeat_decides_whatever_the_uptime() -> None:
    # A fresh stack on an old data folder: the old heartbeat is what there is, and it is stale.
    assert _check(2 * MAX_AGE, up_for=5).status == "unhealthy"
    assert _check(5, up_for=5).status == "healthy"


def test_clock_skew_where_the_tick_is_after_its_storing_is_reported_not_hidden() -> None:
    # Prefect's clock (the tick's nominal time) ahead of the worker's: stored 2 s "before" it was sent.
    beat = _check(30, sent_before=-2.0)
    assert beat.status == "healthy"
    assert beat.end_to_end_seconds == pytest.approx(-2.0)
    assert beat.reason == "last heartbeat stored 30 s ago, 2.0 s before its nominal send time (the clocks disagree)"


def test_only_the_stored_time_decides_health_not_the_tick_time() -> None:
    # A tick delivered very late (after downtime) but stored just now: the path works now.
    beat = _check(5, sent_before=3 * MAX_AGE)
    assert beat.status == "healthy"
    assert beat.end_to_end_seconds == pytest.approx(3 * MAX_AGE)


def test_a_heartbeat_stored_after_now_is_healthy_just_now() -> None:
    # The store's clock ahead of the checker's.
    beat = _check(-3)
    assert beat.status == "healthy" and beat.age_seconds == pytest.approx(-3)
    assert beat.reason.startswith("last heartbeat stored just now, ")


def test_times_in_other_zones_are_compared_as_instants() -> None:
    plus_two = timezone(timedelta(hours=2))
    last = (_ago(50).astimezone(plus_two), _ago(40).astimezone(plus_two))
    beat = check_heartbeat(last, now=NOW.astimezone(plus_two), max_age_seconds=MAX_AGE)
    assert beat.age_seconds == pytest.approx(40) and beat.end_to_end_seconds == pytest.approx(10)
    assert beat.last_stored is not None and beat.last_stored.tzinfo == UTC


@pytest.mark.parametrize(
    "kwargs",
    [
        {"now": NOW.replace(tzinfo=None)},
        {"last": (NOW.replace(tzinfo=None), NOW)},
        {"up_since": NOW.replace(tzinfo=None)},
        {"max_age_seconds": 0},
        {"max_age_seconds": float("nan")},
    ],
)
def test_naive_times_and_a_non_positive_max_age_are_refused(kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {"last": None, "now": NOW, "max_age_seconds": MAX_AGE, **kwargs}
    with pytest.raises(ValueError):
        check_heartbeat(args.pop("last"), **args)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0.0 s"), (3.14, "3.1 s"), (42.4, "42 s"), (119, "119 s"), (660, "11 min"), (840, "14 min"),
     (9000, "2.5 h"), (3 * 86400, "3.0 d"), (-5, "0.0 s")],
)  # fmt: skip
def test_durations_read_naturally(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_is_heartbeat_needs_the_type_and_the_schedule_source() -> None:
    assert is_heartbeat("scheduled_tick", "schedule")
    assert not is_heartbeat("scheduled_tick", "emit")  # someone's own `flowhook emit scheduled_tick`
    assert not is_heartbeat("user_request", "schedule")


def test_json_and_event_payload_are_json_able_and_complete() -> None:
    beat = _check(42)
    data = to_json_dict(beat)
    assert data["status"] == "healthy" and data["healthy"] is True
    assert data["last_stored"] == _ago(42).isoformat() and data["age_seconds"] == pytest.approx(42)
    assert data["max_age_seconds"] == MAX_AGE and data["checked"] == NOW.isoformat()
    never = to_json_dict(_check(None))
    assert never["status"] == "unknown" and never["last_stored"] is None and never["healthy"] is False
    payload = stored_event_payload((_ago(10), _ago(7)))
    assert payload == {"occurred": _ago(10).isoformat(), "stored": _ago(7).isoformat(), "end_to_end_seconds": 3.0}


def test_the_alert_says_what_is_missing_and_what_to_check() -> None:
    text = alert_markdown(_check(20 * 60))
    assert "UNHEALTHY — no heartbeat stored for 20 min (max 11 min)" in text
    assert "stored at 2025-03-01 11:40:00 UTC" in text
    for place in ("emit-tick/every-5-minutes", "GET /health", "flowhook status", "work pool", "FLOWHOOK_"):
        assert place in text
    assert "No heartbeat has ever been stored." in alert_markdown(_check(None, up_for=2 * MAX_AGE))
    # Fired while the store has a fresh heartbeat: the Prefect event is what went missing.
    assert f"no `{HEARTBEAT_EVENT}` event in time" in alert_markdown(_check(30))


# --- the proactive trigger in prefect.yaml ---------------------------------------------------------------


def _deployment(name: str) -> dict[str, Any]:
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    [entry] = [d for d in config["deployments"] if d["name"] == name]
    return dict(entry)


def test_the_alert_deployment_has_a_proactive_trigger_on_the_heartbeat_event() -> None:
    entry = _deployment("on-missing-heartbeat")
    assert entry["entrypoint"] == "flows/trigger_path_alert.py:trigger_path_alert"
    [spec] = entry["triggers"]
    trigger = DeploymentEventTrigger.model_validate(spec)  # what `prefect deploy` does with it
    assert trigger.posture == "Proactive"
    assert trigger.expect == {HEARTBEAT_EVENT}
    assert trigger.match.model_dump() == {"prefect.resource.id": HEARTBEAT_RESOURCE}
    assert trigger.threshold == 1 and trigger.enabled
    assert trigger.parameters is None  # a proactive firing has no event to template from
    # The trigger and `flowhook status` must agree on when the heartbeat is missing.
    assert trigger.within == timedelta(seconds=Settings.model_fields["heartbeat_max_age_seconds"].default)


def test_the_flow_and_the_artifact_key_are_the_ones_the_readme_names() -> None:
    readme = (ROOT / "README.md").read_text()
    assert ALERT_ARTIFACT_KEY in readme and "trigger-path-alert/on-missing-heartbeat" in readme
    assert "HEARTBEAT_MAX_AGE_SECONDS" in readme and "status --check" in readme
