"""The first ok copy of an id wins, a failed row is replaced by a later copy; dead letters read back as events."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from flowhook.events import Event
from flowhook.store import DuckDBStore, EventStore, StoredEvent
from tests.store.test_duckdb_store import T0, make_event

# The events table as flowhook stored it before retries: no `attempts`.
OLD_EVENTS_DDL = """
CREATE TABLE events (
  id VARCHAR NOT NULL, type VARCHAR NOT NULL, source VARCHAR NOT NULL,
  occurred TIMESTAMP NOT NULL, received TIMESTAMP NOT NULL,
  emitted TIMESTAMP, started TIMESTAMP, stored TIMESTAMP,
  batch_id VARCHAR NOT NULL, flow_run_id VARCHAR, status VARCHAR NOT NULL, error VARCHAR,
  data JSON NOT NULL, result JSON)
"""


def failed(event_id: str, attempts: int = 3, **overrides: Any) -> StoredEvent:
    fields: dict[str, Any] = {"error": f"RuntimeError: try {attempts}", "result": None}
    return make_event(event_id, status="failed", attempts=attempts, **(fields | overrides))


def ok(event_id: str, **overrides: Any) -> StoredEvent:
    return make_event(event_id, result={"done": True}, **overrides)


def rows(store: EventStore) -> list[tuple[Any, ...]]:
    return store.query("SELECT id, status, attempts, error, batch_id FROM events ORDER BY id")


def test_a_failed_row_is_replaced_by_a_later_ok_copy(store: EventStore) -> None:
    assert store.write_events([failed("a", batch_id="first")]) == 1
    assert store.write_events([ok("a", batch_id="replay")]) == 0  # no new id: the same event, now ok
    assert rows(store) == [("a", "ok", 1, None, "replay")]
    assert store.duplicate_ids() == 0


def test_an_ok_row_stays_when_a_failed_copy_comes_later(store: EventStore) -> None:
    store.write_events([ok("a", batch_id="first")])
    assert store.write_events([failed("a", batch_id="late")]) == 0
    assert rows(store) == [("a", "ok", 1, None, "first")]


def test_a_failed_row_is_replaced_by_a_later_failed_copy_with_its_attempts(store: EventStore) -> None:
    store.write_events([failed("a", attempts=1, batch_id="first")])
    store.write_events([failed("a", attempts=5, batch_id="replay")])
    assert rows(store) == [("a", "failed", 5, "RuntimeError: try 5", "replay")]
    assert store.duplicate_ids() == 0


def test_a_mixed_batch_skips_ok_ids_replaces_failed_ones_and_adds_new_ones(store: EventStore) -> None:
    store.write_events([ok("a"), failed("b"), failed("c"), ok("d")])
    batch = [failed("a", batch_id="2"), ok("b", batch_id="2"), failed("c", 4, batch_id="2"), ok("e", batch_id="2")]
    assert store.write_events(batch) == 1
    assert rows(store) == [
        ("a", "ok", 1, None, "batch-1"),
        ("b", "ok", 1, None, "2"),
        ("c", "failed", 4, "RuntimeError: try 4", "2"),
        ("d", "ok", 1, None, "batch-1"),
        ("e", "ok", 1, None, "2"),
    ]
    assert store.write_events(batch) == 0  # the same batch again: c is replaced by itself, nothing else moves
    assert store.count_events() == 5 and store.duplicate_ids() == 0


def test_within_a_batch_the_first_ok_copy_wins_else_the_last_copy(store: EventStore) -> None:
    batch = [
        failed("x", 1, batch_id="x1"),
        ok("x", batch_id="x2"),
        ok("y", batch_id="y1"),
        failed("y", batch_id="y2"),
        ok("y", batch_id="y3"),
        failed("z", 1, batch_id="z1"),
        failed("z", 2, batch_id="z2"),
    ]
    assert store.write_events(batch) == 3
    assert rows(store) == [
        ("x", "ok", 1, None, "x2"),
        ("y", "ok", 1, None, "y1"),
        ("z", "failed", 2, "RuntimeError: try 2", "z2"),
    ]


def test_a_replacement_that_fails_to_insert_keeps_the_failed_row(store: EventStore) -> None:
    store.write_events([failed("a"), ok("b")])
    batch = [ok("a")] + [ok(f"n{i}") for i in range(15_000)] + [ok("bad", data={"when": object()})]
    with pytest.raises(TypeError, match="JSON serializable"):
        store.write_events(batch)
    assert rows(store) == [("a", "failed", 3, "RuntimeError: try 3", "batch-1"), ("b", "ok", 1, None, "batch-1")]


def test_many_failed_rows_are_replaced_in_one_write(store: EventStore) -> None:
    store.write_events([failed(f"e{i}") if i % 3 == 0 else ok(f"e{i}") for i in range(30_000)])
    assert store.count_events() == 30_000
    assert store.write_events([ok(f"e{i}", batch_id="replay") for i in range(0, 30_000, 3)]) == 0
    assert store.query("SELECT status, batch_id, count(*) FROM events GROUP BY ALL ORDER BY ALL") == [
        ("ok", "batch-1", 20_000),
        ("ok", "replay", 10_000),
    ]
    assert store.duplicate_ids() == 0


def test_an_old_file_without_attempts_gains_the_column_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "events.duckdb"
    con = duckdb.connect(str(path))
    con.execute(OLD_EVENTS_DDL)
    for event_id, status, error in (("old-ok", "ok", None), ("old-failed", "failed", "ValueError: bad")):
        con.execute(
            "INSERT INTO events VALUES (?, 'user_request', 'test', TIMESTAMP '2024-05-01 10:00:00', "
            "TIMESTAMP '2024-05-01 10:00:01', NULL, NULL, TIMESTAMP '2024-05-01 10:00:02', 'b0', NULL, ?, ?, "
            "'{\"n\": 1}', NULL)",
            [event_id, status, error],
        )
    con.close()

    store = DuckDBStore(path)
    assert rows(store) == [("old-failed", "failed", 1, "ValueError: bad", "b0"), ("old-ok", "ok", 1, None, "b0")]
    [letter] = store.dead_letters()
    assert (letter.event.id, letter.attempts, letter.error) == ("old-failed", 1, "ValueError: bad")
    assert store.write_events([ok("old-failed", batch_id="replay"), ok("old-ok"), ok("new")]) == 1
    assert rows(store) == [
        ("new", "ok", 1, None, "batch-1"),
        ("old-failed", "ok", 1, None, "replay"),
        ("old-ok", "ok", 1, None, "b0"),
    ]
    assert store.duplicate_ids() == 0


def test_attempts_must_be_at_least_one() -> None:
    with pytest.raises(ValueError, match="attempts"):
        make_event("a", attempts=0)


def _seed_dead_letters(store: EventStore) -> None:
    """Failures of two types at T0+0..4 min (stored), and ok events that must never show."""
    for minute, (event_id, event_type) in enumerate(
        [
            ("u1", "user_request"),
            ("d1", "data_update"),
            ("u2", "user_request"),
            ("d2", "data_update"),
            ("u3", "user_request"),
        ]
    ):
        store.write_events(
            [failed(event_id, attempts=minute + 1, type=event_type, data={"n": minute}), ok(f"ok-{event_id}")],
            stored=T0 + timedelta(minutes=minute),
        )


def test_dead_letters_come_back_as_events_ready_to_spool_with_error_and_attempts(store: EventStore) -> None:
    _seed_dead_letters(store)
    letters = store.dead_letters()
    assert [(d.event.id, d.attempts, d.error, d.stored) for d in letters] == [
        (f"{kind}{n}", minute + 1, f"RuntimeError: try {minute + 1}", T0 + timedelta(minutes=minute))
        for minute, (kind, n) in enumerate([("u", 1), ("d", 1), ("u", 2), ("d", 2), ("u", 3)])
    ]
    assert letters[1].event == Event(
        id="d1", type="data_update", source="test", occurred=T0, received=T0 + timedelta(seconds=1), data={"n": 1}
    )
    assert letters[1].batch_id == "batch-1"


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"event_type": "user_request"}, ["u1", "u2", "u3"]),
        ({"ids": ["d2", "u1", "ok-u1", "nope"]}, ["u1", "d2"]),
        ({"ids": []}, []),
        ({"since": T0 + timedelta(minutes=2)}, ["u2", "d2", "u3"]),
        ({"until": T0 + timedelta(minutes=2)}, ["u1", "d1"]),
        ({"since": T0 + timedelta(minutes=1), "until": T0 + timedelta(minutes=3)}, ["d1", "u2"]),
        ({"event_type": "data_update", "since": T0 + timedelta(minutes=2)}, ["d2"]),
        ({"event_type": "no_such_type"}, []),
    ],
)
def test_dead_letters_filter_by_type_ids_and_failure_time(
    store: EventStore, filters: dict[str, Any], expected: list[str]
) -> None:
    _seed_dead_letters(store)
    assert [letter.event.id for letter in store.dead_letters(**filters)] == expected


def test_the_dead_letters_view_shows_the_failed_rows(store: EventStore) -> None:
    _seed_dead_letters(store)
    store.write_events([ok("u2")], stored=T0 + timedelta(hours=1))  # replayed, and ok now: no longer a dead letter
    columns = store.query(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = 'dead_letters' ORDER BY column_index",
        reports=True,
    )
    assert [name for (name,) in columns] == [
        "id", "type", "source", "occurred", "received", "stored", "attempts", "error", "data", "batch_id", "flow_run_id"
    ]  # fmt: skip
    assert store.query("SELECT id, attempts, data->>'n' FROM dead_letters ORDER BY stored", reports=True) == [
        ("u1", 1, "0"),
        ("d1", 2, "1"),
        ("d2", 4, "3"),
        ("u3", 5, "4"),
    ]


def test_an_id_stored_ok_is_never_replaced_even_beside_a_stray_failed_row(store: EventStore) -> None:
    store.write_events([ok("a")])
    with store.connect() as con:  # a file broken by hand: the same id stored ok and failed
        con.execute("INSERT INTO events SELECT * REPLACE ('failed' AS status, 'x' AS batch_id) FROM events")
    assert store.write_events([ok("a", batch_id="late")]) == 0
    assert store.query("SELECT status, batch_id FROM events ORDER BY ALL") == [("failed", "x"), ("ok", "batch-1")]
