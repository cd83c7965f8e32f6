"""Event ids: derived without a UUID object, they must stay exactly uuid5's (ids already stored depend on it)."""

from __future__ import annotations

import uuid

import pytest

from flowhook.events import derive_event_id
from flowhook.events.envelope import _NAMESPACE


@pytest.mark.parametrize("delivery_id", ["msg_1", "", "é/ü\U0001f600", "x" * 500, "sha256:" + "ab" * 32])
@pytest.mark.parametrize("index", [None, 0, 7, 10**9])
def test_a_derived_id_is_uuid5_of_source_delivery_and_index(delivery_id: str, index: int | None) -> None:
    key = f"shop\x1f{delivery_id}" if index is None else f"shop\x1f{delivery_id}\x1f{index}"
    assert derive_event_id("shop", delivery_id, index) == str(uuid.uuid5(_NAMESPACE, key))
