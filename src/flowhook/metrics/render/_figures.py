"""How the renderers write numbers: significant figures, durations with units, percentages, clock times."""

from __future__ import annotations

import math
from datetime import datetime

SMALL = 1e-3
"""Below this, the terminal writes a figure in scientific notation (8.33e-7) rather than as a row of zeros."""

_DURATION_UNITS: tuple[tuple[str, float, float], ...] = (
    # unit, its length in seconds, and the figure (in seconds) from which the next unit takes over
    ("µs", 1e-6, 1e-3),
    ("ms", 1e-3, 1.0),
    ("s", 1.0, 100.0),
    ("min", 60.0, 100 * 60.0),
    ("h", 3600.0, 48 * 3600.0),
    ("d", 86400.0, math.inf),
)


def significant(value: float, digits: int = 4) -> float:
    """Round to `digits` significant figures, but never drop integer digits (12345.6 -> 12346.0)."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, max(0, digits - 1 - math.floor(math.log10(abs(value)))))


def number(value: float | None, digits: int = 4) -> str:
    """A table cell: `—` for none, yes/no, integers in full with separators, `∞`, else `digits` significant
    figures without trailing zeros (integer digits are never dropped: 12,346)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    rounded = significant(value, digits)
    if rounded == 0 or not math.isfinite(rounded):
        return f"{rounded:g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(rounded))))
    text = f"{rounded:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def compact(value: float | None) -> str:
    """A figure in at most about eight characters, for the terminal: three significant figures, and scientific
    notation below `SMALL` (8.33e-7, never 0.0000008333)."""
    if isinstance(value, float) and math.isfinite(value) and 0 < abs(value) < SMALL:
        mantissa, exponent = f"{value:.2e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    return number(value, digits=3)


def duration(seconds: float | None) -> str:
    """Seconds in the unit that reads best, three significant figures: `36.1 µs`, `436 ms`, `7.2 s`, `2.5 min`."""
    if seconds is None:
        return "—"
    if math.isinf(seconds):
        return "∞" if seconds > 0 else "-∞"
    rounded = significant(seconds, 3)
    if rounded == 0:
        return "0 s"
    for unit, size, upto in _DURATION_UNITS:
        if abs(rounded) < upto:
            return f"{number(significant(rounded / size, 3), digits=3)} {unit}"
    raise AssertionError("unreachable: the last unit takes any finite figure")


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def clock(value: datetime) -> str:
    """The time of day, to the second."""
    return value.strftime("%H:%M:%S")


def rounded(value: float | None) -> float | None:
    """`value` to four significant figures; None for none or a figure JSON cannot hold (∞, NaN)."""
    return None if value is None or not math.isfinite(value) else significant(value)


def finite(value: float | None) -> float | None:
    """JSON has no infinity: an unbounded figure (an unstable queue's p99) is written as null."""
    return None if value is None or not math.isfinite(value) else value
