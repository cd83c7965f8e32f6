"""Prefect tasks: retry, cache and tag policy around flowhook functions; no logic of their own."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from flowhook.settings import get_settings
from flowhook.spool import BatchSpool, open_spool
from flowhook.store import EventStore, store_from_config

T = TypeVar("T")

IO_RETRIES: dict[str, Any] = {"retries": 3, "retry_delay_seconds": [2, 5, 15]}
"""The retry policy of every task that does I/O (files, DuckDB, the gateway, Prefect's API)."""


class Bulk(Generic[T]):
    """A batch's events handed between tasks in one piece.

    Prefect walks task arguments and results that are lists, dicts or models, item by item (looking
    for futures to wait on and results to link): ~1 ms per event, 20 s for a 20,000-event batch.
    A plain object is passed through as it is.
    """

    __slots__ = ("items",)

    def __init__(self, items: T) -> None:
        self.items = items

    def __repr__(self) -> str:
        size = len(self.items) if hasattr(self.items, "__len__") else "?"
        return f"Bulk({size} items)"


def current_store() -> EventStore:
    """The store the settings name (FLOWHOOK_STORE: the DuckDB file or a DuckLake), opened per call."""
    return store_from_config(get_settings().store_config)


def current_spool() -> BatchSpool:
    """The spool the settings name (a local folder, or S3 with FLOWHOOK_SPOOL_URL), opened per call."""
    return open_spool(get_settings())
