"""Figures that tests measure, printed in pytest's terminal summary (so CI's log shows them, captured or not).

A test calls `report("gateway: …")`; the root conftest prints every line at the end of the session.
"""

from __future__ import annotations

FIGURES: list[str] = []


def report(text: str) -> None:
    """Keep `text` (one line or a table) for the closing summary."""
    FIGURES.append(text)
