"""The audit: every acknowledged event the spool still knows as done must be in the store, exactly once.

Why: a store can lose committed rows without an error (DuckDB has open reports of a torn WAL tail being
discarded on recovery after a crash). A batch is marked done only after its events were committed, so each
id in a done batch must be stored; batches still open, ready, sent or claimed are not yet expected there.
The reach is the done batches the sweeper still keeps (`FLOWHOOK_DONE_RETENTION_HOURS`). Ids stored twice
are counted over the whole store (writes skip stored ids under the write lock, so any is a broken store).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowhook.spool import BatchSpool
    from flowhook.store import EventStore

LISTED = 1000
"""Ids kept and shown per finding (the counts are exact); `flowhook audit --json` prints these too."""

_MISSING = """
SELECT id, min(batch_id) AS batch_id FROM acknowledged ANTI JOIN events USING (id)
GROUP BY id ORDER BY batch_id, id
"""
_DOUBLED = "SELECT id, count(*) AS copies FROM events GROUP BY id HAVING count(*) > 1 ORDER BY id"


@dataclass(frozen=True)
class Audit:
    """One audit's finding: how many acknowledged ids the store lacks or holds twice, and (up to `LISTED`) which."""

    audited_at: datetime
    spool: str
    done_batches: int
    acknowledged: int
    missing: int = 0
    doubled: int = 0
    missing_ids: list[tuple[str, str]] = field(default_factory=list)
    """(event id, the done batch that holds it)."""
    doubled_ids: list[tuple[str, int]] = field(default_factory=list)
    """(event id, rows the store holds for it)."""
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        return not self.missing and not self.doubled

    def warning(self) -> str | None:
        """The report's warning sentence for this finding; None when it is clean."""
        if self.clean:
            return None
        found = []
        if self.missing:
            found.append(f"{self.missing:,} acknowledged events are missing from the store")
        if self.doubled:
            found.append(f"{self.doubled:,} events are stored more than once")
        return (
            f"Audit at {self.audited_at:%Y-%m-%d %H:%M:%S} UTC: {' and '.join(found)}. Run `flowhook audit` for "
            "their ids and batches (also in the store's `audits` table); the batch files are in the spool's done/."
        )


def run_audit(store: EventStore, spool: BatchSpool, *, now: datetime | None = None) -> Audit:
    """Compare the done batches' ids with the store, in DuckDB (a registered Arrow table, not a Python loop).

    The spool is read first: a batch is done only after its rows were committed, so nothing read as done
    can still be on its way into the store.
    """
    import pyarrow as pa

    began = time.perf_counter()
    audited_at = now or datetime.now(UTC)
    done = spool.done_ids()
    acknowledged = pa.table(
        {
            "batch_id": pa.array([batch for batch, ids in done.items() for _ in ids], type=pa.string()),
            "id": pa.array([event_id for ids in done.values() for event_id in ids], type=pa.string()),
        }
    )
    with store.connect() as con:
        con.register("acknowledged", acknowledged)
        try:
            distinct = con.execute("SELECT count(DISTINCT id) FROM acknowledged").fetchall()[0][0]
            missing = con.execute(_MISSING).fetchall()
            doubled = con.execute(_DOUBLED).fetchall()
        finally:
            con.unregister("acknowledged")
    return Audit(
        audited_at=audited_at,
        spool=spool.url,
        done_batches=len(done),
        acknowledged=int(distinct),
        missing=len(missing),
        doubled=len(doubled),
        missing_ids=[(str(i), str(b)) for i, b in missing[:LISTED]],
        doubled_ids=[(str(i), int(n)) for i, n in doubled[:LISTED]],
        seconds=time.perf_counter() - began,
    )


def save_audit(store: EventStore, audit: Audit) -> None:
    """Keep the finding in the store's `audits` table, where the report looks for it."""
    row = {**to_json_dict(audit), "audited_at": audit.audited_at}
    row["missing_ids"] = json.dumps(row["missing_ids"])
    row["doubled_ids"] = json.dumps(row["doubled_ids"])
    store.write_report({"audits": [row]})


def latest_audit(store: EventStore) -> Audit | None:
    """The newest saved finding; None before the first audit."""
    rows = store.query(
        "SELECT audited_at, spool, done_batches, acknowledged, missing, doubled, missing_ids, doubled_ids, seconds "
        "FROM audits ORDER BY audited_at DESC LIMIT 1",
        reports=True,
    )
    if not rows:
        return None
    at, spool, batches, acknowledged, missing, doubled, missing_ids, doubled_ids, seconds = rows[0]
    return Audit(
        audited_at=at.replace(tzinfo=UTC),
        spool=spool,
        done_batches=batches,
        acknowledged=acknowledged,
        missing=missing,
        doubled=doubled,
        missing_ids=[(i, b) for i, b in json.loads(missing_ids or "[]")],
        doubled_ids=[(i, n) for i, n in json.loads(doubled_ids or "[]")],
        seconds=seconds or 0.0,
    )


def audit_due(last: Audit | None, *, every_seconds: float, now: datetime) -> bool:
    """Whether the periodic audit should run again (the sweeper runs every minute; an audit reads every batch)."""
    return last is None or (now - last.audited_at).total_seconds() >= every_seconds


def to_json_dict(audit: Audit) -> dict[str, Any]:
    return {
        "audited_at": audit.audited_at.isoformat(),
        "spool": audit.spool,
        "done_batches": audit.done_batches,
        "acknowledged": audit.acknowledged,
        "missing": audit.missing,
        "doubled": audit.doubled,
        "missing_ids": [list(pair) for pair in audit.missing_ids],
        "doubled_ids": [list(pair) for pair in audit.doubled_ids],
        "seconds": audit.seconds,
    }
