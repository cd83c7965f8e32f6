"""How the renderers write numbers: the Markdown's four significant figures, the terminal's compact figures and
durations with units."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from flowhook.metrics.render._figures import clock, compact, duration, number, percent, rounded, significant


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "—"),
        (True, "yes"),
        (False, "no"),
        (0, "0"),
        (1000, "1,000"),
        (1234567, "1,234,567"),
        (0.0, "0"),
        (0.2, "0.2"),
        (2.5, "2.5"),
        (6.0, "6"),
        (1 / 3, "0.3333"),
        (1000 / 10.19, "98.14"),
        (0.005095000000000001, "0.005095"),
        (12345.6, "12,346"),
        (999.96, "1,000"),
        (9.99996, "10"),
        (-0.5, "-0.5"),
        (math.inf, "∞"),
        (-math.inf, "-∞"),
    ],
)
def test_number(value: float | None, expected: str) -> None:
    assert number(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "—"),
        (0, "0"),
        (85_320, "85,320"),
        (0.0, "0"),
        (23.7, "23.7"),
        (1 / 3, "0.333"),
        (27_698.4, "27,698"),  # integer digits are never dropped
        (0.0013889, "0.00139"),
        (0.001, "0.001"),
        (0.00099996, "1e-3"),
        (0.000856, "8.56e-4"),
        (8.3333e-7, "8.33e-7"),
        (2.5e-7, "2.5e-7"),
        (-8.3333e-7, "-8.33e-7"),
        (math.inf, "∞"),
    ],
)
def test_compact_never_writes_a_row_of_zeros(value: float | None, expected: str) -> None:
    assert compact(value) == expected
    assert len(compact(value)) <= 8


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (None, "—"),
        (0.0, "0 s"),
        (3.61e-5, "36.1 µs"),
        (5e-7, "0.5 µs"),
        (0.000999, "999 µs"),
        (0.0009996, "1 ms"),  # rounds up into the next unit, not to "1,000 µs"
        (0.012, "12 ms"),
        (0.436, "436 ms"),
        (0.9996, "1 s"),
        (1.046, "1.05 s"),
        (7.2, "7.2 s"),
        (99.4, "99.4 s"),
        (300.0, "5 min"),
        (720.0, "12 min"),
        (3600.0, "60 min"),
        (7200.0, "2 h"),
        (3 * 86400.0, "3 d"),
        (-0.049, "-49 ms"),  # a skewed clock's occurred→received
        (-5.2, "-5.2 s"),
        (math.inf, "∞"),
    ],
)
def test_duration_picks_the_unit(seconds: float | None, expected: str) -> None:
    assert duration(seconds) == expected


def test_the_small_helpers() -> None:
    assert significant(12345.6) == 12346.0
    assert significant(0.00123456, 3) == 0.00123
    assert percent(None) == "—" and percent(0.2857) == "28.6%"
    assert clock(datetime(2025, 1, 1, 9, 5, 7, 123456, tzinfo=UTC)) == "09:05:07"
    assert rounded(math.inf) is None and rounded(None) is None and rounded(1 / 3) == 0.3333
