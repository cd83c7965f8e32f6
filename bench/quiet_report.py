"""What bench/pipeline.py prints about its quiet section: per worker type, the floor, cold and warm paths, CPU
per run start and memory per run, and for flowhook's worker type which of its targets were met."""

from __future__ import annotations

from typing import Any

TARGETS = {"cold_p50": 1.0, "cold_p99": 2.0, "cpu_per_run_start": 0.3, "warm_p50": 0.5}
"""Issue 18's targets for the flowhook worker type (seconds; CPU-seconds)."""

NAN = float("nan")


def _pair(stats: dict[str, float] | None) -> str:
    return "—" if not stats else f"{stats['p50']:.2f}/{stats['p99']:.2f}"


def print_quiet(quiet: dict[str, Any]) -> None:
    """Per worker type: floor, cold and warm (p50/p99 s), CPU per run start and per cold run, memory per run."""
    print(
        f"{'worker type':>11} {'floor s':>11} {'cold s':>11} {'warm s':>11} {'CPU s/start':>11} "
        f"{'CPU s/cold run':>14} {'run PSS/private MB':>18} {'runs at once PSS MB':>19}"
    )
    for worker_type, r in quiet.items():
        floor, cold, warm, memory = r.get("floor", {}), r.get("cold", {}), r.get("warm", {}), r["run_memory"]
        print(
            f"{worker_type:>11} {_pair(floor.get('emit_to_complete')):>11} {_pair(cold.get('received_to_stored')):>11} "
            f"{_pair(warm.get('received_to_stored')):>11} {floor.get('cpu_seconds_per_run_start', NAN):>11.2f} "
            f"{cold.get('cpu_seconds_per_run', NAN):>14.2f} "
            f"{memory.get('pss_mb_p50', 0):>9.0f}/{memory.get('private_mb_p50', 0):<8.0f} "
            f"{memory['peak_total_pss_mb']:>19.0f}"
        )


def summarise_quiet(quiet: dict[str, Any]) -> list[str]:
    """Per worker type: floor, cold and warm; for flowhook's, each target met or missed."""
    lines = []
    for worker_type, r in quiet.items():
        floor = (r.get("floor") or {}).get("emit_to_complete") or {}
        cold = (r.get("cold") or {}).get("received_to_stored") or {}
        warm = (r.get("warm") or {}).get("received_to_stored") or {}
        cpu = (r.get("floor") or {}).get("cpu_seconds_per_run_start", NAN)
        line = (
            f"{worker_type}: cold received→stored p50 {cold.get('p50', NAN):.2f} s, p99 {cold.get('p99', NAN):.2f} s "
            f"over {cold.get('count', 0)} events; Prefect floor emit→complete p50 {floor.get('p50', NAN):.2f} s; "
            f"warm p50 {warm.get('p50', NAN):.2f} s; {cpu:.2f} CPU-s per run start"
        )
        if worker_type == "flowhook":
            met = {
                "cold p50": cold.get("p50", NAN) <= TARGETS["cold_p50"],
                "cold p99": cold.get("p99", NAN) <= TARGETS["cold_p99"],
                "CPU per start": cpu <= TARGETS["cpu_per_run_start"],
                "warm p50": warm.get("p50", NAN) <= TARGETS["warm_p50"],
            }
            line += " — targets: " + ", ".join(f"{k} {'met' if ok else 'MISSED'}" for k, ok in met.items())
        lines.append(line)
        burst = r.get("burst")
        if burst:
            memory = burst["run_memory"]
            lines.append(
                f"{worker_type}: a burst of {burst['runs']} empty runs at once, all completed in "
                f"{burst['seconds_until_all_completed']:.1f} s, {burst['cpu_seconds_per_run']:.2f} CPU-s a run; "
                f"per run RSS {memory.get('rss_mb_p50', NAN):.0f} MB, PSS {memory.get('pss_mb_p50', NAN):.0f} MB, "
                f"private {memory.get('private_mb_p50', NAN):.0f} MB (p50); {memory['runs_seen']} runs seen, "
                f"PSS of the runs at once at most {memory['peak_total_pss_mb']:.0f} MB"
            )
    return lines
