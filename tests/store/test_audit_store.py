"""The audit on each store backend (a DuckDB file, a DuckLake): a row lost behind its back is named, and the
finding is saved where the report reads it."""

from __future__ import annotations

from pathlib import Path

from flowhook.audit import latest_audit, run_audit, save_audit
from flowhook.spool import Spool
from flowhook.store import EventStore
from tests.factories import make_event, stored_event


def test_a_lost_row_is_named_and_the_finding_saved(store: EventStore, tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    batch_id = spool.write_batch([make_event(n) for n in range(6)]).batch_id
    events = spool.claim_events(batch_id)
    assert events is not None
    store.write_events([stored_event(event, batch_id=batch_id) for event in events])
    spool.complete(batch_id)
    assert run_audit(store, spool).clean

    with store.connect() as con:  # behind the store's back: no write path, no lock
        con.execute("DELETE FROM events WHERE id = 'e4'")
    found = run_audit(store, spool)
    save_audit(store, found)

    assert (found.acknowledged, found.missing, found.missing_ids) == (6, 1, [("e4", batch_id)])
    assert latest_audit(store) == found
