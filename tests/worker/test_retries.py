"""Per-event retries: only the failed events are called again, after backoff, then stored over their failed rows."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import Field, ValidationError

from flowhook.events import Event, EventData, Result, event_type, load_catalog
from flowhook.settings import Settings
from flowhook.spool import BatchRef
from flowhook.store import DuckDBStore, StoredEvent
from flowhook.worker import steps
from flowhook.worker.config import RetryPolicy
from tests.factories import T0

FLAKY = "retry_probe"
OTHER = "retry_probe_other"
CALLS: Counter[str] = Counter()
"""Handler calls per payload key, across the tests (each test uses keys of its own)."""


class Flaky(EventData):
    """A test payload whose handler fails its first `fails` calls (-1: always)."""

    key: str = Field(description="Counts the calls; unique per test event.")
    fails: int = Field(description="How many calls fail before one succeeds; -1 for every call.")


def _flaky(data: Flaky) -> Result:
    CALLS[data.key] += 1
    if data.fails < 0 or CALLS[data.key] <= data.fails:
        raise RuntimeError(f"call {CALLS[data.key]} of {data.key} failed")
    return {"calls": CALLS[data.key]}


event_type(FLAKY, Flaky)(_flaky)
event_type(OTHER, Flaky)(_flaky)


def flaky(key: str, fails: int, kind: str = FLAKY) -> Event:
    return Event(id=key, type=kind, source="test", occurred=T0, received=T0, data={"key": key, "fails": fails})


def first_pass(*events: Event) -> list[StoredEvent]:
    batch = BatchRef(batch_id="b1", event_type=FLAKY, count=len(events), sealed=T0, emitted=T0)
    return steps.handle(events, catalog=load_catalog(), batch=batch, started=T0, flow_run_id="run-1")


class Sleeps(list[float]):
    """An injected sleep that records each wait instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def retry(
    handled: list[StoredEvent], policy: RetryPolicy | None = None, **overrides: RetryPolicy
) -> tuple[list[StoredEvent], Sleeps]:
    settings = Settings(retry=policy or RetryPolicy(), retry_overrides=overrides)
    sleeps = Sleeps()
    retried = steps.retry_failed(handled, catalog=load_catalog(), policy_for_type=settings.retry_policy, sleep=sleeps)
    return retried, sleeps


def test_a_handler_failing_twice_then_succeeding_is_ok_after_three_attempts() -> None:
    handled = first_pass(flaky("twice", fails=2))
    assert [(e.status, e.attempts, e.error) for e in handled] == [("failed", 1, "RuntimeError: call 1 of twice failed")]
    retried, sleeps = retry(handled)
    assert [(e.id, e.status, e.attempts, e.error, e.result) for e in retried] == [
        ("twice", "ok", 3, None, {"calls": 3})
    ]
    assert sleeps == pytest.approx([0.2, 0.4])
    assert CALLS["twice"] == 3


def test_an_always_failing_event_is_failed_after_every_attempt_with_the_last_error() -> None:
    retried, sleeps = retry(first_pass(flaky("never", fails=-1)), RetryPolicy(attempts=4))
    assert [(e.status, e.attempts, e.error, e.result) for e in retried] == [
        ("failed", 4, "RuntimeError: call 4 of never failed", None)
    ]
    assert CALLS["never"] == 4
    assert sleeps == pytest.approx([0.2, 0.4, 0.8])


def test_the_good_events_are_returned_by_the_first_pass_and_never_called_again() -> None:
    handled = first_pass(flaky("good-1", fails=0), flaky("bad", fails=1), flaky("good-2", fails=0))
    assert [(e.id, e.status, e.attempts, e.result) for e in handled] == [
        ("good-1", "ok", 1, {"calls": 1}),
        ("bad", "failed", 1, None),
        ("good-2", "ok", 1, {"calls": 1}),
    ]
    retried, _ = retry(handled)
    assert [(e.id, e.status, e.attempts) for e in retried] == [("bad", "ok", 2)]
    assert (CALLS["good-1"], CALLS["good-2"], CALLS["bad"]) == (1, 1, 2)


def test_the_retried_event_keeps_its_envelope_and_step_fields() -> None:
    [handled] = first_pass(flaky("fields", fails=1))
    [retried], _ = retry([handled])
    same = ("id", "type", "source", "occurred", "received", "emitted", "started", "batch_id", "flow_run_id", "data")
    assert all(getattr(retried, name) == getattr(handled, name) for name in same)


@pytest.mark.parametrize(
    ("policy", "waits"),
    [
        (RetryPolicy(attempts=6), [0.2, 0.4, 0.8, 1.6, 3.2]),
        (RetryPolicy(attempts=6, max_backoff_seconds=1.0), [0.2, 0.4, 0.8, 1.0, 1.0]),
        (RetryPolicy(attempts=4, backoff_seconds=0.5, backoff_factor=1.0), [0.5, 0.5, 0.5]),
        (RetryPolicy(attempts=3, backoff_seconds=0.0), []),  # no waiting at all, but still three calls
    ],
)
def test_backoff_grows_by_the_factor_up_to_the_cap(
    policy: RetryPolicy, waits: list[float], request: pytest.FixtureRequest
) -> None:
    key = request.node.name
    retried, sleeps = retry(first_pass(flaky(key, fails=-1)), policy)
    assert sleeps == pytest.approx(waits)
    assert [e.attempts for e in retried] == [policy.attempts] and CALLS[key] == policy.attempts


def test_one_wait_per_round_covers_every_failed_event_of_the_step() -> None:
    handled = first_pass(*(flaky(f"round-{n}", fails=-1) for n in range(50)), flaky("round-late", fails=2))
    retried, sleeps = retry(handled)
    assert sleeps == pytest.approx([0.2, 0.4])  # not 0.2 s per event: 51 failures cost the same as one
    assert [e.id for e in retried] == [e.id for e in handled]  # in the step's order
    assert Counter(e.status for e in retried) == {"failed": 50, "ok": 1}


def test_an_override_sets_its_types_policy_and_the_rest_keep_the_default() -> None:
    handled = first_pass(flaky("default", fails=-1), flaky("override", fails=-1, kind=OTHER))
    retried, sleeps = retry(
        handled, RetryPolicy(attempts=2), **{OTHER: RetryPolicy(attempts=4, backoff_seconds=0.3, backoff_factor=1)}
    )
    assert [(e.id, e.attempts) for e in retried] == [("default", 2), ("override", 4)]
    # The default type is due at 0.2 s; the override's at 0.3, 0.6 and 0.9 s: each wait is to the next due call.
    assert sleeps == pytest.approx([0.2, 0.1, 0.3, 0.3])


def test_a_single_attempt_policy_never_calls_again_or_waits() -> None:
    handled = first_pass(flaky("once", fails=-1))
    retried, sleeps = retry(handled, **{FLAKY: RetryPolicy(attempts=1)})
    assert (retried, sleeps, CALLS["once"]) == ([], [], 1)


def test_an_unknown_type_is_retried_like_any_failure_and_kept_failed() -> None:
    unknown = Event(id="unknown", type="no_such_type", source="test", occurred=T0, received=T0, data={})
    retried, _ = retry(first_pass(unknown))
    assert [(e.status, e.attempts) for e in retried] == [("failed", 3)]
    assert retried[0].error and retried[0].error.startswith("UnknownEventType: unknown event type 'no_such_type'")


def test_retry_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWHOOK_RETRY__ATTEMPTS", "5")
    monkeypatch.setenv("FLOWHOOK_RETRY__BACKOFF_SECONDS", "0.05")
    monkeypatch.setenv("FLOWHOOK_RETRY_OVERRIDES", '{"user_request": {"attempts": 1}}')
    settings = Settings()
    assert settings.retry_policy("data_update") == RetryPolicy(attempts=5, backoff_seconds=0.05)
    assert settings.retry_policy("user_request") == RetryPolicy(attempts=1)
    assert Settings.model_fields["retry"].description and Settings.model_fields["retry_overrides"].description


@pytest.mark.parametrize("bad", [{"attempts": 0}, {"backoff_seconds": -1}, {"backoff_factor": 0.5}])
def test_a_policy_that_makes_no_sense_is_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        RetryPolicy.model_validate(bad)


def test_the_step_stores_the_good_at_once_then_the_retried_over_their_failed_rows(tmp_path: Path) -> None:
    db = DuckDBStore(tmp_path / "flowhook.duckdb", lock_timeout=10)
    handled = first_pass(flaky("s-good", fails=0), flaky("s-flaky", fails=1), flaky("s-dead", fails=-1))
    assert steps.failures(handled) == 2
    assert steps.store(db, handled, now=T0 + timedelta(seconds=1)) == 3  # the good one waits for nobody
    retried, _ = retry(handled)
    assert steps.store(db, retried, now=T0 + timedelta(seconds=2)) == 0  # no new ids: the same ones, replaced
    assert steps.failures(handled, retried) == 1
    rows = db.query("SELECT id, status, attempts, error, second(stored) FROM events ORDER BY id")
    assert rows == [
        ("s-dead", "failed", 3, "RuntimeError: call 3 of s-dead failed", 2),
        ("s-flaky", "ok", 2, None, 2),
        ("s-good", "ok", 1, None, 1),
    ]
    assert db.duplicate_ids() == 0
    # The whole step again (a re-run of the batch): the ok rows stay, the dead letter is reprocessed.
    again = first_pass(flaky("s-good", fails=0), flaky("s-flaky", fails=1), flaky("s-dead", fails=-1))
    assert steps.store(db, again, now=T0 + timedelta(seconds=3)) == 0
    assert db.query("SELECT id, attempts, second(stored) FROM events WHERE status = 'ok' ORDER BY id") == [
        ("s-flaky", 2, 2),
        ("s-good", 1, 1),
    ]
    assert db.query("SELECT attempts, error FROM events WHERE id = 's-dead'") == [
        (1, "RuntimeError: call 4 of s-dead failed")
    ]
    assert db.count_events() == 3 and db.duplicate_ids() == 0
