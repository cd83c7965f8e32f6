"""The demo load is valid, varied, and new on every unseeded run."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from flowhook.demo import plan_deliveries
from flowhook.events import load_catalog
from flowhook.gateway.deliveries import parse_delivery


def test_every_planned_delivery_is_a_valid_event_of_a_builtin_type() -> None:
    catalog = load_catalog()
    now = datetime.now(UTC)
    types: Counter[str] = Counter()
    for delivery in plan_deliveries(600, seed=3):
        [event] = parse_delivery(
            delivery.body, catalog=catalog, source="demo", delivery_id=delivery.msg_id, signed_at=now, received=now
        )
        types[event.type] += 1
    assert set(types) == {"user_request", "data_update", "scheduled_tick"}
    assert types["user_request"] > types["data_update"] > types["scheduled_tick"]


def test_resends_repeat_an_earlier_delivery_exactly() -> None:
    plan = plan_deliveries(2000, resend_ratio=0.05, seed=5)
    firsts = {d.msg_id: d.body for d in plan if not d.resend}
    resends = [d for d in plan if d.resend]
    assert len(firsts) == 2000
    assert 50 <= len(resends) <= 150
    assert all(firsts[d.msg_id] == d.body for d in resends)


def test_seeded_plans_repeat_and_unseeded_plans_do_not() -> None:
    assert [d.msg_id for d in plan_deliveries(20, seed=1)] == [d.msg_id for d in plan_deliveries(20, seed=1)]
    assert {d.msg_id for d in plan_deliveries(20)}.isdisjoint(d.msg_id for d in plan_deliveries(20))
