"""The fault suite's closing table, printed in pytest's terminal summary (so CI's log shows it, captured or not)."""

from __future__ import annotations

import pytest

SUMMARIES: list[str] = []
"""Summary tables of the scenarios run in this session, appended by tests/faults/test_faults.py."""


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for text in SUMMARIES:
        terminalreporter.write_line(text)
