"""Little's law from two sources: the verdict's arithmetic, pure."""

from __future__ import annotations

import math

import pytest

from flowhook.metrics.little import LITTLE_TOLERANCE, BacklogSample, little_check


def _sample(sampled: float, counted: float, *, changes: int = 1000, watched: float = 60.0) -> BacklogSample:
    return BacklogSample(
        sampled_seconds=sampled, counted_seconds=counted, changes=changes, watched_seconds=watched, period_seconds=0.1
    )


def test_agreement_holds_and_gives_both_backlogs() -> None:
    check = little_check(_sample(1200.0, 1180.0), 1180.0)
    assert check is not None
    assert check.sampled_backlog == pytest.approx(20.0)
    assert check.counted_backlog == pytest.approx(1180.0 / 60)
    assert check.gap == pytest.approx(20 / 1200)
    assert check.watched_share == 1.0
    assert check.verdict == "holds"


@pytest.mark.parametrize(("sampled", "counted", "verdict"), [(1000.0, 950.0, "holds"), (1000.0, 949.0, "fails")])
def test_the_tolerance_is_five_percent_of_the_larger(sampled: float, counted: float, verdict: str) -> None:
    check = little_check(_sample(sampled, counted, changes=10), counted)
    assert check is not None
    assert 3 * check.sigma < LITTLE_TOLERANCE * sampled  # the 5 % bound decides here, not the noise
    assert check.verdict == verdict
    assert little_check(_sample(counted, sampled, changes=10), sampled).verdict == verdict  # type: ignore[union-attr]


def test_small_counts_are_allowed_three_sigma_of_sampling_noise() -> None:
    # 6 events, each arriving and leaving once: σ = 0.1 × √(12/6) ≈ 0.141 event-seconds.
    check = little_check(_sample(2.0, 1.7, changes=12), 1.7)
    assert check is not None
    assert check.sigma == pytest.approx(0.1 * math.sqrt(2))
    assert check.allowed == pytest.approx(3 * 0.1 * math.sqrt(2))
    assert check.verdict == "holds"  # 0.3 apart: 15 %, within 3σ ≈ 0.42
    assert little_check(_sample(2.0, 1.5, changes=12), 1.5).verdict == "fails"  # type: ignore[union-attr]


def test_incomplete_when_the_watched_time_saw_under_ninety_percent() -> None:
    check = little_check(_sample(100.0, 100.0), 120.0)  # 100 of the window's 120 event-seconds watched
    assert check is not None
    assert check.watched_share == pytest.approx(100 / 120)
    assert check.verdict == "incomplete"


def test_nothing_to_check() -> None:
    assert little_check(None, 50.0) is None
    assert little_check(_sample(0.0, 0.0), 0.0) is None
