"""The samples against the store: sampled event-seconds beside those the timestamps give, and the ingress counts.

Only seconds wholly inside the window and wholly watched (sampled without a gap) are compared. A second's
records add up over its writers: one gateway process watches the shared folders at a time (others record only
their own open batches, covering nothing), and a watcher that took over within the second covered the rest of
it. Where the writers' coverage overlaps (two watched at once: an older gateway restarted within the second),
the one that watched more of it counts, with the writers that covered nothing.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa

from flowhook.metrics.capacity import GatewayUsage
from flowhook.metrics.little import BacklogSample
from flowhook.metrics.report import BucketTotals, IngressCount, Window
from flowhook.names import ALL_TYPES
from flowhook.sampling.archive import Samples
from flowhook.sampling.recorder import outcome_of
from flowhook.store.schema import seconds_between

WATCHED = 0.999
"""A second counts as watched when the samples cover this much of it."""

_OVERLAP = 1.001
"""More coverage than this in one second means two writers watched at once."""

_INTERVALS = pa.schema([("a", pa.timestamp("us")), ("b", pa.timestamp("us"))])

# K and the arrivals and departures within the watched intervals, from `ev` (see flowhook.reporting).
_COUNTED = f"""
SELECT CASE WHEN grouping(type) = 1 THEN '{ALL_TYPES}' ELSE type END AS event_type,
  coalesce(sum(greatest(0, {seconds_between("least(coalesce(stored, $now), i.b)", "greatest(received, i.a)")})), 0)
    AS counted,
  count(*) FILTER (WHERE received >= i.a) + count(*) FILTER (WHERE stored < i.b) AS changes
FROM ev JOIN watched_intervals i ON ev.received < i.b AND coalesce(ev.stored, $now) > i.a
GROUP BY GROUPING SETS ((type), ())
"""


def _watched(samples: Samples, window: Window) -> dict[int, tuple[frozenset[str], float, int]]:
    """{second: (writers counted, covered, samples)} of the seconds inside the window the samples watched."""
    first, last = math.ceil(window.start.timestamp()), math.floor(window.end.timestamp())
    seconds: dict[int, dict[str, tuple[float, int]]] = defaultdict(dict)
    for row in samples.backlog:
        at = round(row["second_start"].timestamp())
        if row["event_type"] == ALL_TYPES and first <= at and at + 1 <= last:
            seconds[at][row["writer"]] = (float(row["covered_seconds"] or 0.0), int(row["samples"] or 0))
    watched: dict[int, tuple[frozenset[str], float, int]] = {}
    for at, writers in seconds.items():
        covered = sum(c for c, _ in writers.values())
        taken = sum(n for _, n in writers.values())
        counted = frozenset(writers)
        if covered > _OVERLAP:
            best = max(writers, key=lambda writer: writers[writer][0])
            (covered, taken), counted = writers[best], frozenset({best, *(w for w, (c, _) in writers.items() if not c)})
        if covered >= WATCHED:
            watched[at] = (counted, covered, taken)
    return watched


def _intervals(seconds: Sequence[int]) -> list[tuple[int, int]]:
    """Consecutive seconds merged into [a, b) intervals."""
    spans: list[tuple[int, int]] = []
    for at in sorted(seconds):
        if spans and spans[-1][1] == at:
            spans[-1] = (spans[-1][0], at + 1)
        else:
            spans.append((at, at + 1))
    return spans


def _naive(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None)


def backlog_samples(
    con: duckdb.DuckDBPyConnection, samples: Samples, window: Window, *, now: datetime
) -> dict[str, BacklogSample] | None:
    """Per type (and ALL_TYPES): S and K over the watched seconds; None when no sample falls in the window.

    `con` holds the window's events as the temp table `ev` (received, stored, type).
    """
    if not samples.backlog:
        return None
    watched = _watched(samples, window)
    if not watched:
        return {}
    sampled: dict[str, float] = defaultdict(float)
    for row in samples.backlog:
        at = round(row["second_start"].timestamp())
        if row["writer"] in watched.get(at, (frozenset(),))[0]:
            sampled[row["event_type"]] += float(row["event_seconds"] or 0.0)
    spans = _intervals(list(watched))
    table = pa.table({"a": [_naive(a) for a, _ in spans], "b": [_naive(b) for _, b in spans]}, schema=_INTERVALS)
    con.register("watched_intervals", table)
    try:
        cursor = con.execute(_COUNTED, {"now": now.astimezone(UTC).replace(tzinfo=None)})
        counted = {name: (float(k), int(n)) for name, k, n in cursor.fetchall()}
    finally:
        con.unregister("watched_intervals")
    covered = sum(c for _, c, _ in watched.values())
    taken = sum(n for _, _, n in watched.values())
    period = covered / taken if taken else 0.0
    return {
        name: BacklogSample(
            sampled_seconds=sampled.get(name, 0.0),
            counted_seconds=counted.get(name, (0.0, 0))[0],
            changes=counted.get(name, (0.0, 0))[1],
            watched_seconds=float(len(watched)),
            period_seconds=period,
        )
        for name in {*sampled, *counted, ALL_TYPES}
    }


def _outcome(row: Mapping[str, Any]) -> str:
    """A counted row's outcome (rows from before outcomes were counted have it from their status)."""
    return str(row.get("outcome") or outcome_of(int(row["status"])))


def ingress_counts(samples: Samples) -> list[IngressCount]:
    """The window's delivery outcomes, summed per source, type, status and code."""
    sums: dict[tuple[str, str, int, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for row in samples.ingress:
        key = (str(row["source"]), str(row["event_type"]), int(row["status"]), str(row["code"]), _outcome(row))
        sums[key][0] += int(row["deliveries"] or 0)
        sums[key][1] += int(row["events"] or 0)
    return [IngressCount(*key, deliveries=d, events=e) for key, (d, e) in sums.items()]


def with_deliveries(buckets: list[BucketTotals], samples: Samples, window: Window) -> list[BucketTotals]:
    """The buckets with the deliveries the gateway answered in each (offered) and did not accept (refused): per
    type where the delivery was read, and all of them in the ALL_TYPES buckets."""
    counts: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
    for row in samples.ingress:
        k = int((row["second_start"] - window.start).total_seconds() // window.bucket_seconds)
        deliveries = int(row["deliveries"] or 0)
        refused = 0 if _outcome(row) == "accepted" else deliveries
        for event_type in {str(row["event_type"]), ALL_TYPES}:
            counts[(event_type, k)][0] += deliveries
            counts[(event_type, k)][1] += refused
    if not counts:
        return buckets
    out = []
    for index, bucket in enumerate(buckets):
        k = round((bucket.start - window.start).total_seconds() / window.bucket_seconds)
        offered, refused = counts.get((bucket.event_type, k), (0, 0))
        out.append(dataclasses.replace(bucket, offered=offered, refused=refused) if offered else buckets[index])
    return out


def gateway_usage(samples: Samples) -> GatewayUsage | None:
    """The gateway's CPU and answers over the window, summed over its writers; None without usage samples."""
    if not samples.usage:
        return None
    deliveries = offered = accepted_deliveries = accepted_events = 0
    for row in samples.ingress:
        count, events = int(row["deliveries"] or 0), int(row["events"] or 0)
        outcome = _outcome(row)
        deliveries += count
        offered += events if outcome in ("accepted", "quarantined") else count
        if outcome == "accepted":
            accepted_deliveries += count
            accepted_events += events
    return GatewayUsage(
        cpu_seconds=sum(float(r["cpu_seconds"] or 0.0) for r in samples.usage),
        wall_seconds=sum(float(r["wall_seconds"] or 0.0) for r in samples.usage),
        deliveries=deliveries,
        offered_events=offered,
        accepted_deliveries=accepted_deliveries,
        accepted_events=accepted_events,
    )
