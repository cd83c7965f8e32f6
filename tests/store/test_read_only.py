"""`EventStore.read_only`, on each backend: the connection `flowhook sql` runs on cannot change the store."""

from __future__ import annotations

import duckdb
import pytest

from flowhook.store import EventStore
from tests.factories import make_event, stored_event

WRITES = [
    "DROP TABLE events",
    "DELETE FROM events",
    "INSERT INTO events SELECT * FROM events",
    "UPDATE events SET status = 'failed'",
    "CREATE TABLE t AS SELECT 1 AS x",
    "CREATE OR REPLACE VIEW event_latency AS SELECT 1 AS x",
]


def test_reads_work_and_no_write_gets_through(store: EventStore) -> None:
    store.write_events([stored_event(make_event(n), batch_id="b1") for n in range(5)])
    with store.read_only() as con:
        assert con.execute("SELECT count(*) FROM events").fetchall() == [(5,)]
        assert con.execute("SELECT count(*) FROM latest_reports").fetchall() == [(0,)]  # the views are there
        for statement in WRITES:
            with pytest.raises(duckdb.Error, match="read-only"):
                con.execute(statement)
    assert store.count_events() == 5
    assert store.query("SELECT count(*) FROM event_latency WHERE sent_seconds IS NOT NULL") == [(5,)]
    assert store.write_events([stored_event(make_event(9), batch_id="b2")]) == 1  # nothing left holding it
