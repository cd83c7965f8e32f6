"""The gateway's counts set beside the report's buckets: deliveries offered and refused per bucket."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flowhook.metrics.report import OVERALL, BucketTotals, Window
from flowhook.sampling.archive import Samples
from flowhook.sampling.compare import ingress_counts, with_deliveries

T0 = datetime(2026, 6, 1, tzinfo=UTC)


def _row(second: int, event_type: str, status: int, outcome: str, deliveries: int) -> dict[str, object]:
    return {
        "second_start": T0 + timedelta(seconds=second), "writer": "w", "source": "demo", "event_type": event_type,
        "status": status, "code": str(status), "outcome": outcome, "deliveries": deliveries, "events": deliveries,
    }  # fmt: skip


def test_deliveries_offered_and_refused_land_in_their_buckets() -> None:
    window = Window(T0, T0 + timedelta(seconds=20), bucket_seconds=10.0)
    buckets = [
        BucketTotals(name, T0 + timedelta(seconds=10 * k), 10.0, 0, 0, 0, None)
        for name in ("a", OVERALL)
        for k in (0, 1)
    ]
    samples = Samples(
        ingress=[
            _row(3, "a", 202, "accepted", 5),
            _row(4, "", 429, "refused", 2),  # refused before it was read: no type, counted in "all" only
            _row(12, "a", 422, "quarantined", 1),
            _row(19, "", 408, "timed_out", 1),
        ]
    )
    got = {(b.event_type, b.start): (b.offered, b.refused) for b in with_deliveries(buckets, samples, window)}
    assert got == {
        ("a", T0): (5, 0),
        ("a", T0 + timedelta(seconds=10)): (1, 1),
        (OVERALL, T0): (7, 2),
        (OVERALL, T0 + timedelta(seconds=10)): (2, 2),
    }
    totals = {(c.event_type, c.outcome): c.deliveries for c in ingress_counts(samples)}
    assert totals == {("a", "accepted"): 5, ("", "refused"): 2, ("a", "quarantined"): 1, ("", "timed_out"): 1}


def test_without_counts_the_buckets_are_unchanged() -> None:
    window = Window(T0, T0 + timedelta(seconds=10), bucket_seconds=10.0)
    buckets = [BucketTotals(OVERALL, T0, 10.0, 3, 3, 0, None)]
    assert with_deliveries(buckets, Samples(), window) == buckets
