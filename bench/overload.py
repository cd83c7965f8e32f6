"""The overload level of `bench/gateway_ingest.py`: find the gateway's capacity, then offer twice it.

Capacity is found with admission control off (loop-lag target and `max_in_flight` out of reach): the highest
offered rate of a ladder (single-event deliveries, a fresh gateway each) whose every delivery was
acknowledged 202, at 97 % of the offered rate or more, with ack p99 within `TARGET_P99_MS`. Twice that is
then offered to the gateway as configured (admission on): past capacity it should answer the excess at once
(503 `overloaded`, Retry-After) and keep acknowledging about its capacity, quickly; and, beside it, with
admission off, what the same load did before. Printed per run:
accepted/s and its ratio to capacity, ack p99 of the accepted ones and of all answers, refusals by status,
the gateway's peak RSS, lost and duplicated (every 202'd id must be in the spool once). With `--repeat N`,
the medians of N runs (each finds its own capacity); with `--capacity C`, C is taken instead of searched.

The gateway runs on one core and the load on the other (`pinned`, the default; `--unpinned` lets them share
both): 2x a capacity of ~3,000/s is more than one load process offers while it competes with the gateway for
both cores, and a run that sends less than 2x does not test 2x. The load may also be split across `processes`
load processes. Each row shows what was asked and what the load really wrote per second (`sent/s`, and its
share of the asked rate): read accepted/capacity against it.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable
from typing import Any

from bench.loadgen import Level
from bench.results import write_results

LADDER = (1000, 1250, 1500, 1750, 2000, 2250, 2500, 2750, 3000, 3250, 3500, 3750, 4000)
"""Offered deliveries/s tried, in order, until one is not acknowledged whole."""

TARGET_P99_MS = 1000.0
"""Ack p99 a level's deliveries must keep to count as acknowledged (senders time out at ~10 s, retry sooner)."""
NO_ADMISSION = {"FLOWHOOK_INGRESS__MAX_IN_FLIGHT": "1000000", "FLOWHOOK_INGRESS__MAX_LOOP_LAG_SECONDS": "3600"}

RunLevel = Callable[..., dict[str, Any]]


def capacity(
    run_level: RunLevel, *, seconds: float, connections: int, processes: int, pinned: bool
) -> tuple[float, list[dict[str, Any]]]:
    """The highest rate of `LADDER` whose deliveries were all acknowledged in time (admission off), and the rows
    tried."""
    best, rows = 0.0, []
    for rate in LADDER:
        row = run_level(
            Level(rate, seconds, 1), connections=connections, env=NO_ADMISSION, processes=processes, pinned=pinned
        )
        rows.append(row)
        print(f"  capacity search: {rate:>5}/s offered ({row['offered_achieved_per_s']:.0f}/s sent) -> "
              f"{row['acked_deliveries_per_s']:>6.0f}/s acked, p99 {row['ack_p99_ms']:.0f} ms, "
              f"{row['statuses']}")  # fmt: skip
        kept_up = row["acked_deliveries_per_s"] >= 0.97 * rate  # not stretched out behind a queue
        if row["statuses"].get(202, 0) != row["deliveries"] or row["ack_p99_ms"] > TARGET_P99_MS or not kept_up:
            break
        best = rate
    return best, rows


def _summary(cap: float, row: dict[str, Any]) -> dict[str, Any]:
    refused = {status: n for status, n in row["statuses"].items() if status != 202}
    return {
        "capacity_per_s": cap,
        "offered_per_s": row["offered_deliveries_per_s"],  # asked
        "sent_per_s": row["offered_achieved_per_s"],  # what the load processes really wrote
        "sent_of_asked": row["offered_achieved_per_s"] / row["offered_deliveries_per_s"],
        "sent_lag_p99_ms": row["send_lag_p99_ms"],
        "generator_lag_p99_ms": row["generator_lag_p99_ms"],
        "accepted_per_s": row["acked_deliveries_per_s"],
        "ratio_to_capacity": row["acked_deliveries_per_s"] / cap,
        "accepted_p99_ms": row["accepted_p99_ms"],
        "all_p99_ms": row["ack_p99_ms"],
        "refused": refused,
        "refused_share": sum(refused.values()) / row["deliveries"],
        "gateway_peak_rss_mb": row["gateway_peak_rss_mb"],
        "gateway_cpu_s": row["gateway_cpu_s"],
        "load_cpu_s": row["load_cpu_s"],
        "load_processes": row["load_processes"],
        "lost": row["lost"],
        "duplicated": row["duplicated"],
    }


HEADER = (
    f"{'capacity/s':>10} {'asked/s':>8} {'sent/s':>7} {'sent %':>6} {'accepted/s':>10} {'ratio':>6} "
    f"{'p99 202 ms':>10} {'p99 all ms':>10} {'load cpu s':>10} {'gen lag ms':>10} {'rss MB':>7} {'lost':>5} "
    f"{'dup':>4}  refused"
)
"""`asked/s`: 2x capacity; `sent/s`: what the load really wrote per second (short of asked when every connection
is busy, or when the load processes fall behind: then `gen lag ms`, p99 of due → picked up, grows); `ratio`:
accepted/s over capacity."""


def _print(s: dict[str, Any]) -> None:
    print(
        f"{s['capacity_per_s']:>10.0f} {s['offered_per_s']:>8.0f} {s['sent_per_s']:>7.0f} {s['sent_of_asked']:>6.0%} "
        f"{s['accepted_per_s']:>10.0f} {s['ratio_to_capacity']:>6.2f} {s['accepted_p99_ms']:>10.1f} "
        f"{s['all_p99_ms']:>10.1f} {s['load_cpu_s']:>10.1f} {s['generator_lag_p99_ms']:>10.1f} "
        f"{s['gateway_peak_rss_mb']:>7.0f} {s['lost']:>5} "
        f"{s['duplicated']:>4}  {s['refused']}"
    )


MEDIAN_KEYS = (
    "capacity_per_s", "offered_per_s", "sent_per_s", "sent_of_asked", "sent_lag_p99_ms", "accepted_per_s",
    "ratio_to_capacity", "accepted_p99_ms", "all_p99_ms", "refused_share", "gateway_peak_rss_mb", "gateway_cpu_s",
    "load_cpu_s", "generator_lag_p99_ms",
)  # fmt: skip


def _medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    median = {key: statistics.median(r[key] for r in runs) for key in MEDIAN_KEYS}
    median |= {"lost": sum(r["lost"] for r in runs), "duplicated": sum(r["duplicated"] for r in runs)}
    median["refused"] = f"median share {median['refused_share']:.0%}"
    return median


def overload_runs(
    run_level: RunLevel,
    *,
    repeat: int,
    seconds: float,
    connections: int,
    processes: int = 1,
    given_capacity: float | None = None,
    pinned: bool = True,
) -> int:
    """`repeat` runs of capacity (searched, or `given_capacity`), then twice it with admission on and, beside it,
    off, the load from `processes` processes; prints each and the medians; writes the results file."""
    runs, unadmitted, searches = [], [], []
    where = "the gateway on one core, the load on the other" if pinned else "gateway and load on every core"
    print(f"load: {processes} process(es), {connections} connections in all; {where}")
    for _ in range(repeat):
        if given_capacity:
            cap = given_capacity
        else:
            cap, tried = capacity(
                run_level, seconds=seconds, connections=connections, processes=processes, pinned=pinned
            )
            searches.append(tried)
        if not cap:
            print(f"FAILED: not even {LADDER[0]}/s was acknowledged whole")
            return 1
        row = run_level(Level(2 * cap, seconds, 1), connections=connections, processes=processes, pinned=pinned)
        runs.append({**_summary(cap, row), "row": row})
        row = run_level(
            Level(2 * cap, seconds, 1), connections=connections, env=NO_ADMISSION, processes=processes, pinned=pinned
        )
        unadmitted.append({**_summary(cap, row), "row": row})
        print(f"{HEADER}  (admission on, then off)")
        _print(runs[-1])
        _print(unadmitted[-1])
    median, median_off = _medians(runs), _medians(unadmitted)
    print(f"medians of {repeat} run(s), admission on, then off; load average {os.getloadavg()[0]:.2f}:")
    print(HEADER)
    _print(median)
    _print(median_off)
    figures = {
        "seconds_per_level": seconds,
        "connections": connections,
        "load_processes": processes,
        "pinned": pinned,
        "capacity_given": given_capacity,
        "ladder": LADDER,
        "target_p99_ms": TARGET_P99_MS,
    }
    document = {"median": median, "median_admission_off": median_off, "runs": runs, "runs_admission_off": unadmitted}
    if given_capacity:  # a capacity given is a check, not the benchmark: the results file keeps the searched one
        print("capacity given, not searched: figures not written")
    else:
        path = write_results("gateway_overload", {**figures, **document, "searches": searches})
        print(f"figures written to {path}")
    bad = median["lost"] or median["duplicated"] or median_off["lost"] or median_off["duplicated"]
    if bad:
        print("FAILED: acknowledged deliveries lost or duplicated")
    return 1 if bad else 0
