"""Capacity per stage and the bottleneck: the arithmetic, and what every renderer says of it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from flowhook.metrics import to_json_dict, to_markdown, to_store_rows
from flowhook.metrics.capacity import GatewayUsage, gateway_stage, saturation_rate, store_stage, worker_stage
from flowhook.metrics.report import OVERALL, IngressCount, Report, TypeTotals, Window, build_report
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


def test_workers_and_the_store() -> None:
    worker = worker_stage("a", completions=600, busy_seconds=3.0, arrival_rate=10.0)
    assert worker is not None and (worker.capacity, worker.utilisation) == (200.0, 0.05)
    # The store: 900 events in 12 s of steps over a 60 s window; λ = 15/s. Held a fifth of the time.
    store = store_stage(completions=900, busy_seconds=12.0, arrival_rate=15.0, seconds=60.0)
    assert store is not None and store.capacity == pytest.approx(75.0)
    assert store.utilisation == pytest.approx(0.2)
    assert saturation_rate(store, 15.0) == pytest.approx(75.0)
    assert worker_stage("a", completions=0, busy_seconds=0.0, arrival_rate=1.0) is None


def _report(cpu: float) -> Report:
    window = Window(T0, T0 + timedelta(seconds=60))
    totals = [
        TypeTotals("a", arrivals=600, completions=600, busy_seconds=3.0),
        TypeTotals(OVERALL, arrivals=600, completions=600, busy_seconds=3.0),
    ]
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
        ingress=ingress, gateway=usage, cpus=2,
    )  # fmt: skip


@pytest.mark.parametrize(("cpu", "named"), [(30.0, "gateway"), (1.0, "worker/a")])  # ρ 0.5 or 0.0167
def test_the_bottleneck_is_the_busiest_stage_and_every_renderer_names_it(cpu: float, named: str) -> None:
    report = _report(cpu)
    assert [s.name for s in report.stages] == ["gateway", "worker/a", "store"]
    assert report.bottleneck is not None and report.bottleneck.name == named
    # worker/a: ρ = 10/200 = 0.05; the gateway: 645/60 offered against 645/cpu answered per CPU-s.
    expected = max((645 / 60.0) / (645 / cpu), 0.05)
    assert report.bottleneck.utilisation == pytest.approx(expected)
    assert report.saturation_rate == pytest.approx(10.0 / expected)
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
