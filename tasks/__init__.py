"""Prefect tasks: retry, cache and tag policy around flowhook functions; no logic of their own."""

from typing import Any

IO_RETRIES: dict[str, Any] = {"retries": 3, "retry_delay_seconds": [2, 5, 15]}
"""The retry policy of every task that does I/O (files, DuckDB, the gateway, Prefect's API)."""
