"""DuckDBStore bulk writes without a key: files from the keyed schema, streamed chunks, Arrow conversion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from flowhook.store import EVENT_SCHEMA, DuckDBStore, EventStore, to_arrow
from tests.store.test_duckdb_store import T0, make_event

# The events table as the store created it while `id` was the primary key.
KEYED_EVENTS_DDL = """
CREATE TABLE events (
  id VARCHAR PRIMARY KEY, type VARCHAR NOT NULL, source VARCHAR NOT NULL,
  occurred TIMESTAMP NOT NULL, received TIMESTAMP NOT NULL,
  emitted TIMESTAMP, started TIMESTAMP, stored TIMESTAMP,
  batch_id VARCHAR NOT NULL, flow_run_id VARCHAR, status VARCHAR NOT NULL, error VARCHAR,
  data JSON NOT NULL, result JSON)
"""


def column_types(path: Path) -> list[tuple[str, str, str]]:
    con = duckdb.connect(str(path))
    try:
        return con.execute(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_name = 'events' ORDER BY ordinal_position"
        ).fetchall()
    finally:
        con.close()


def test_a_file_with_the_keyed_events_table_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "events.duckdb"
    con = duckdb.connect(str(path))
    con.execute(KEYED_EVENTS_DDL)
    con.execute(
        "INSERT INTO events VALUES ('old', 'user_request', 'test', TIMESTAMP '2024-05-01 10:00:00', "
        "TIMESTAMP '2024-05-01 10:00:01', NULL, NULL, NULL, 'b0', NULL, 'ok', NULL, '{\"user\":\"zoë\"}', NULL)"
    )
    con.close()
    keyed_types = column_types(path)

    store = DuckDBStore(path)
    assert store.write_events([make_event("old", data={"user": "new"}), make_event("fresh")]) == 1
    # The events table lost its key; the only keys left are the report tables' (made on a reports=True open).
    assert store.query("SELECT count(*) FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY'") == [(0,)]
    gained = [("attempts", "INTEGER", "YES"), ("handled", "TIMESTAMP", "YES")]
    assert column_types(path) == [*keyed_types, *gained]  # gained on the way, old rows 1
    assert store.query("SELECT id, data->>'user', attempts FROM events ORDER BY id") == [
        ("fresh", None, 1),
        ("old", "zoë", 1),
    ]
    assert store.write_events([make_event("old"), make_event("fresh")]) == 0
    assert store.count_events() == 2
    assert store.duplicate_ids() == 0


def test_the_events_table_has_the_public_columns_and_json_types(store: EventStore) -> None:
    store.write_events([make_event("a", data={"user_id": "u1"}, result={"ok": True})])
    columns = store.query(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_catalog = current_database() AND table_name = 'events' ORDER BY ordinal_position"
    )
    types = dict(columns)
    assert list(types) == EVENT_SCHEMA.names
    assert (types["data"], types["result"], types["occurred"]) == ("JSON", "JSON", "TIMESTAMP")
    assert store.query("SELECT data->>'user_id', result->>'ok', typeof(data) FROM events") == [("u1", "true", "JSON")]


def test_a_batch_of_many_chunks_keeps_the_first_copy_and_counts_exactly(store: EventStore) -> None:
    assert store.write_events([make_event(f"e{i}") for i in range(0, 30_000, 3)]) == 10_000
    batch = [make_event(f"e{i}", data={"copy": 1}) for i in range(25_000)]
    batch += [make_event(f"e{i}", data={"copy": 2}) for i in range(20_000, 30_000)]  # repeats across chunks
    assert store.write_events(batch) == 20_000
    assert store.write_events(batch) == 0
    assert store.count_events() == 30_000
    assert store.duplicate_ids() == 0
    # e0..e24999 new ones are first copies (also 20000..24999, repeated later); e25000.. only have copy 2.
    assert store.query("SELECT data->>'copy', count(*) FROM events GROUP BY 1 ORDER BY 1 NULLS LAST") == [
        ("1", 16_666),
        ("2", 3_334),
        (None, 10_000),
    ]


def test_data_that_is_not_json_raises_type_error_and_stores_nothing(store: EventStore) -> None:
    batch = [make_event(f"e{i}") for i in range(15_000)] + [make_event("bad", data={"when": object()})]
    with pytest.raises(TypeError, match="JSON serializable"):
        store.write_events(batch)
    assert store.count_events() == 0


PLUS_TWO = timezone(timedelta(hours=2))


@pytest.mark.parametrize(
    "values",
    [
        [T0, T0 + timedelta(microseconds=1), T0 - timedelta(days=20_000)],  # all aware, before the epoch too
        [T0.astimezone(PLUS_TWO), T0 + timedelta(seconds=1)],  # another offset
        [T0, None, T0],  # a null
        [None, None],  # all null
        [T0, T0, T0],  # one time for the batch
        [datetime(2024, 5, 1, 10, 0), T0],  # naive is taken as UTC
        [datetime(2024, 5, 1, 10, 0), datetime(2024, 5, 1, 10, 0)],
    ],
)
def test_to_arrow_times_are_naive_utc_microseconds(values: list[datetime | None]) -> None:
    events = [make_event(f"e{i}", stored=v) for i, v in enumerate(values)]
    expected = pa.array(values, type=pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us"))
    assert to_arrow(events)["stored"].combine_chunks().equals(expected)


def test_to_arrow_of_no_events_is_an_empty_table_in_the_schema() -> None:
    table = to_arrow([])
    assert table.num_rows == 0
    assert table.schema == EVENT_SCHEMA


def _rows(store: EventStore) -> list[tuple[Any, ...]]:
    return store.query("SELECT id, occurred, stored, data, result FROM events ORDER BY id")


def test_streamed_rows_match_the_events_field_by_field(store: EventStore) -> None:
    at = datetime(2024, 5, 1, 12, 0, 0, 7, tzinfo=UTC)
    events = [
        make_event(f"e{i:05d}", occurred=at + timedelta(seconds=i), stored=at, result={"i": i} if i % 2 else None)
        for i in range(12_000)
    ]
    assert store.write_events(events) == 12_000
    rows = _rows(store)
    assert rows[0] == ("e00000", datetime(2024, 5, 1, 12, 0, 0, 7), datetime(2024, 5, 1, 12, 0, 0, 7), '{"n":1}', None)
    assert rows[-1][:2] == ("e11999", datetime(2024, 5, 1, 12, 0, 0, 7) + timedelta(seconds=11_999))
    assert rows[-1][4] == '{"i":11999}'


def test_a_redelivered_id_is_refused_by_a_store_holding_many_rows(tmp_path: Path) -> None:
    """The stored-id check finds an old id among 200k rows (many row groups), not only among recent ones."""
    store = DuckDBStore(tmp_path / "events.duckdb")
    assert store.write_events([make_event("first"), make_event("failed-once", status="failed")]) == 2
    with store.connect() as con:  # 200k rows after them, as a long-running store holds
        con.execute(
            "INSERT INTO events SELECT e.* REPLACE ('filler-' || e.id || '-' || r.n AS id) "
            "FROM events AS e, range(100_000) AS r(n)"
        )
    fresh = [make_event(f"new-{n}") for n in range(500)]
    incoming = [*fresh, make_event("first"), make_event("failed-once"), make_event("filler-first-99999")]
    assert store.write_events(incoming) == 500  # the failed one is replaced, not counted as new
    assert store.count_events() == 2 + 200_000 + 500
    assert store.duplicate_ids() == 0
    assert store.query("SELECT status FROM events WHERE id = 'failed-once'") == [("ok",)]
