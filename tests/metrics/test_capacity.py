"""Capacity per stage and the bottleneck: the arithmetic, and what every renderer says of it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from flowhook.metrics import to_json_dict, to_markdown, to_store_rows
from flowhook.metrics.capacity import (
    GatewayUsage,
    StepSample,
    gateway_stage,
    handler_stage,
    saturation_rate,
    store_stage,
    write_cost,
)
from flowhook.metrics.report import OVERALL, IngressCount, LatencyStats, Report, TypeTotals, Window, build_report
from tests.metrics.render.reports import md_table, rich_text

T0 = datetime(2026, 6, 1, tzinfo=UTC)


def test_the_gateway_is_measured_per_cpu_second_in_events() -> None:
    usage = GatewayUsage(
        cpu_seconds=6.0, wall_seconds=60.0, deliveries=1200, offered_events=3000, accepted_deliveries=1000,
        accepted_events=2500,
    )  # fmt: skip
    stage = gateway_stage(usage, 60.0)
    assert stage is not None
    assert stage.capacity == pytest.approx(1200 / 6.0 * 2.5)  # 200 deliveries per CPU-s, 2.5 events each
    assert stage.load == pytest.approx(50.0)
    assert stage.utilisation == pytest.approx(50.0 / 500.0)
    assert gateway_stage(None, 60.0) is None


def test_handlers_per_second_of_handler_time() -> None:
    steps = [StepSample("a", 100, 0.2, 0.05), StepSample("a", 300, 0.4, 0.07), StepSample("b", 5, 0.0, 0.02)]
    stage = handler_stage("a", [s for s in steps if s.event_type == "a"], arrival_rate=50.0)
    assert stage is not None and stage.capacity == pytest.approx(400 / 0.6)
    assert stage.utilisation == pytest.approx(50.0 / (400 / 0.6))
    assert handler_stage("b", steps[2:], arrival_rate=1.0) is None  # no measurable handler time


def test_the_store_write_is_fitted_as_a_fixed_cost_plus_a_cost_per_event() -> None:
    # Writes of 10 ms + 50 µs per event: 10, 100 and 1,000 events.
    steps = [StepSample("a", n, 0.0, 0.010 + 50e-6 * n) for n in (10, 100, 1000)] * 4
    a, b = write_cost(steps)  # type: ignore[misc]
    assert (a, b) == (pytest.approx(0.010), pytest.approx(50e-6))
    # 12 writes in 60 s: 0.2 writes/s pay 2 ms a second; λ saturates at (1 − 0.002) / 50 µs = 19,960 events/s.
    stage = store_stage(steps, arrival_rate=55.0, seconds=60.0)
    assert stage is not None
    assert stage.capacity == pytest.approx(20_000)
    assert stage.saturates_at == pytest.approx((1 - 0.010 * 12 / 60) / 50e-6)
    assert stage.utilisation == pytest.approx(sum(s.write_seconds for s in steps) / 60)
    assert saturation_rate(stage, 110.0) == pytest.approx(stage.saturates_at * 2)  # its load is half of λ
    # All one size, too few, or a slope lost in the noise: no cost per event, the capacity is left unknown.
    assert write_cost([StepSample("a", 100, 0.0, 0.03)] * 12) is None
    assert write_cost(steps[:6]) is None
    noisy = [StepSample("a", n, 0.0, 0.010 + (0.02 if i % 2 else 0.0) + 1e-6 * n) for i, n in enumerate((1, 2, 3) * 8)]
    assert write_cost(noisy) is None
    unknown = store_stage(noisy, arrival_rate=5.0, seconds=60.0)
    assert unknown is not None and unknown.capacity is None and unknown.saturates_at is None
    assert saturation_rate(unknown, 5.0) is None  # so it cannot be named the bottleneck
    assert store_stage([], arrival_rate=1.0, seconds=60.0) is None


def _report(cpu: float) -> Report:
    """600 events of `a` in 60 s, handled at 200/s (3 s of handlers), written in 60 steps of 10 ms + 10 µs each."""
    window = Window(T0, T0 + timedelta(seconds=60))
    totals = [
        TypeTotals("a", arrivals=600, completions=600, busy_seconds=3.0),
        TypeTotals(OVERALL, arrivals=600, completions=600, busy_seconds=3.0),
    ]
    steps = [StepSample("a", n, n / 200, 0.010 + 10e-6 * n) for n in (5, 15) * 30]
    ingress = [
        IngressCount("demo", "a", 202, "accepted", "accepted", deliveries=600, events=600),
        IngressCount("demo", "", 429, "rate_limited", "refused", deliveries=40, events=0),
        IngressCount("", "", 408, "request_timeout", "timed_out", deliveries=2, events=0),
        IngressCount("demo", "", 422, "invalid_event", "quarantined", deliveries=3, events=0),
    ]
    usage = GatewayUsage(
        cpu_seconds=cpu, wall_seconds=60.0, deliveries=645, offered_events=645, accepted_deliveries=600,
        accepted_events=600,
    )  # fmt: skip
    return build_report(
        totals, [], window=window, generated_at=window.end, report_id="r", target_p99_seconds=5.0,
        ingress=ingress, gateway=usage, steps=steps, cpus=2,
    )  # fmt: skip


# λ = 10/s. The gateway answers 645 deliveries per `cpu` CPU-s: it saturates at 10 × 60/cpu. The handlers
# saturate at 200/s; the store at (1 − 0.010 × 60/60) / 10 µs = 99,000/s.
@pytest.mark.parametrize(("cpu", "named", "saturates"), [(30.0, "gateway", 20.0), (1.0, "worker/a", 200.0)])
def test_the_bottleneck_saturates_first_and_every_renderer_names_it(cpu: float, named: str, saturates: float) -> None:
    report = _report(cpu)
    assert [s.name for s in report.stages] == ["gateway", "worker/a", "store"]
    assert report.bottleneck is not None and report.bottleneck.name == named
    assert report.saturation_rate == pytest.approx(saturates)
    store = report.stages[-1]
    assert saturation_rate(store, 10.0) == pytest.approx((1 - 0.010) / 10e-6, rel=1e-6)
    line = f"Bottleneck: {named}, ρ = "
    assert line in " ".join(rich_text(report).split())
    assert line in to_markdown(report)
    data = json.loads(json.dumps(to_json_dict(report)))
    assert data["bottleneck"] == named and data["cpus"] == 2
    assert {s["name"] for s in data["stages"]} == {"gateway", "worker/a", "store"}
    assert to_store_rows(report)["reports"][-1]["bottleneck"] == named


def test_offered_and_answered_deliveries_are_shown() -> None:
    markdown = to_markdown(_report(6.0))
    rows = {cells[0]: cells[1:] for cells in md_table(markdown, "## Deliveries offered and answered")}
    assert rows["demo / a"] == ["600", "600", "0", "0", "0"]
    assert rows["demo / —"] == ["43", "0", "40", "3", "0"]
    assert rows["— / —"] == ["2", "0", "0", "0", "2"]
    assert "Refused or timed out: 408 request_timeout ×2, 429 rate_limited ×40." in markdown
    assert "refused or timed out: 408 request_timeout ×2, 429 rate_limited ×40" in rich_text(_report(6.0))


def test_a_target_needing_more_workers_than_cpus_is_flagged() -> None:
    from flowhook.metrics.render._shared import warnings

    window = Window(T0, T0 + timedelta(seconds=60))
    latency = LatencyStats(count=600, mean=2.0, p50=1.5, p95=4.0, p99=5.0, max=6.0)
    # λ = 10/s against a capacity of 600/120 = 5/s per worker: at least 3 workers for any target.
    totals = [
        TypeTotals("a", arrivals=600, completions=600, busy_seconds=120.0, stages={"latency": latency}),
        TypeTotals(OVERALL, arrivals=600, completions=600, busy_seconds=120.0, stages={"latency": latency}),
    ]
    report = build_report(
        totals, [], window=window, generated_at=window.end, report_id="r", target_p99_seconds=30.0, cpus=2
    )
    needed = report.rows[0].forecast.workers_needed  # type: ignore[union-attr]
    assert needed is not None and needed > 2
    assert any(f"more worker runs than this machine's 2 CPUs: a ({needed})" in note for note in warnings(report))
    roomy = build_report(
        totals, [], window=window, generated_at=window.end, report_id="r", target_p99_seconds=30.0, cpus=64
    )
    assert not any("CPUs" in note for note in warnings(roomy))
