"""`@event_type`'s policies: the Fargate size, the deployment's description and concurrency limit, kept on the
type; the decorator without them registers as before."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from flowhook.events import EventData, Result, TaskSize, event_type, load_catalog
from flowhook.events.builtin import DATA_UPDATE, SCHEDULED_TICK, USER_REQUEST

DECLARED = '''
from flowhook.events import EventData, TaskSize, event_type


class InvoicePaid(EventData):
    """An invoice was paid."""

    invoice: str


@event_type(
    "invoice_paid", InvoicePaid, size=TaskSize(2048, 4096), description="Book paid invoices.", concurrency_limit=3
)
def book(data: InvoicePaid) -> dict[str, str]:
    return {"invoice": data.invoice}


@event_type("invoice_voided", InvoicePaid)
def void(data: InvoicePaid) -> dict[str, str]:
    return {"invoice": data.invoice}
'''


def test_the_policies_are_kept_on_the_type(declare_types: Callable[[str, str], str]) -> None:
    catalog = load_catalog([declare_types("invoices", DECLARED)])
    paid, voided = catalog.get("invoice_paid"), catalog.get("invoice_voided")
    assert (paid.size, paid.deployment_description, paid.concurrency_limit) == (
        TaskSize(2048, 4096),
        "Book paid invoices.",
        3,
    )
    assert (voided.size, voided.deployment_description, voided.concurrency_limit) == (None, None, None)
    assert paid.description == voided.description == "An invoice was paid."
    assert paid.handle({"invoice": "in_1"}) == {"invoice": "in_1"}


def test_the_built_in_types_declare_a_size_each() -> None:
    catalog = load_catalog()
    for name in (USER_REQUEST, DATA_UPDATE, SCHEDULED_TICK):
        assert isinstance(catalog.get(name).size, TaskSize), name


class _Payload(EventData):
    """A payload."""


def _handler(data: _Payload) -> Result:
    return {}


@pytest.mark.parametrize(
    ("policies", "message"),
    [
        ({"concurrency_limit": 0}, "concurrency_limit is at least 1"),
        ({"concurrency_limit": -2}, "concurrency_limit is at least 1"),
        ({"description": "  "}, "needs some text"),
    ],
)
def test_a_policy_that_cannot_be_deployed_is_refused_at_declaration(policies: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        event_type("refused_type", _Payload, **policies)(_handler)  # type: ignore[arg-type]
    assert "refused_type" not in load_catalog()


def test_a_size_fargate_has_not_is_refused() -> None:
    with pytest.raises(ValueError, match="Fargate runs 512 CPU units with 1024–4096 MiB"):
        TaskSize(512, 512)
    with pytest.raises(ValueError, match="no size of 300 CPU units"):
        TaskSize(300, 1024)
