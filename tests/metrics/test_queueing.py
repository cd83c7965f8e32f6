"""Pure tests of the M/M/c forecast: Erlang C, the sojourn quantile, workers needed and the forecast record."""

from __future__ import annotations

import heapq
import itertools
import math
import random
from fractions import Fraction
from typing import Any

import pytest

from flowhook.metrics.queueing import (
    MODEL,
    Forecast,
    erlang_c,
    forecast,
    saturation_rate,
    sojourn_quantile,
    workers_needed,
)

LN100 = math.log(100)


def _needed(arrival_rate: float, service_rate: float, target_seconds: float) -> int:
    c = workers_needed(arrival_rate, service_rate, target_seconds)
    assert c is not None
    return c


def _erlang_c_closed_form(servers: int, load: Fraction) -> Fraction:
    """Textbook formula in exact arithmetic, independent of the module's recursion."""
    top = load**servers / math.factorial(servers) * servers / (servers - load)
    return top / (sum(load**k / math.factorial(k) for k in range(servers)) + top)


# ---- erlang_c ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("load", [0.1, 0.5, 0.9, 0.999])
def test_erlang_c_single_server_is_utilisation(load: float) -> None:
    assert erlang_c(1, load) == pytest.approx(load, rel=1e-12)


@pytest.mark.parametrize(
    ("servers", "load", "expected"),
    [(2, 1.0, 1 / 3), (10, 8.0, 0.40918), (5, 4.0, 0.55411)],
)
def test_erlang_c_textbook_values(servers: int, load: float, expected: float) -> None:
    assert erlang_c(servers, load) == pytest.approx(expected, abs=5e-5)


@pytest.mark.parametrize(("servers", "load"), [(3, Fraction(21, 10)), (7, Fraction(13, 2)), (25, Fraction(20))])
def test_erlang_c_matches_closed_form(servers: int, load: Fraction) -> None:
    assert erlang_c(servers, float(load)) == pytest.approx(float(_erlang_c_closed_form(servers, load)), rel=1e-12)


@pytest.mark.parametrize(("servers", "load"), [(1000, 950.0), (10_000, 9_900.0), (10_000, 9_999.9)])
def test_erlang_c_is_stable_for_many_servers(servers: int, load: float) -> None:
    c = erlang_c(servers, load)
    assert math.isfinite(c)
    assert 0.0 < c < 1.0


def test_erlang_c_falls_as_servers_are_added() -> None:
    values = [erlang_c(c, 950.0) for c in range(951, 1100)]
    assert all(a > b for a, b in itertools.pairwise(values))


@pytest.mark.parametrize(("servers", "load"), [(1, 1.0), (3, 3.0), (3, 7.5), (1000, 1000.0)])
def test_erlang_c_is_one_without_steady_state(servers: int, load: float) -> None:
    assert erlang_c(servers, load) == 1.0


def test_erlang_c_is_zero_without_load() -> None:
    assert erlang_c(4, 0.0) == 0.0


@pytest.mark.parametrize(("servers", "load"), [(0, 1.0), (2, -0.1), (2, math.nan)])
def test_erlang_c_rejects_bad_input(servers: int, load: float) -> None:
    with pytest.raises(ValueError):
        erlang_c(servers, load)


# ---- sojourn_quantile ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("lam", "mu"), [(0.5, 1.0), (9.0, 10.0), (0.01, 3.0), (99.9, 100.0)])
def test_mm1_sojourn_is_exponential(lam: float, mu: float) -> None:
    assert sojourn_quantile(lam, mu, 1, 0.99) == pytest.approx(LN100 / (mu - lam), rel=1e-6)


@pytest.mark.parametrize("q", [0.5, 0.9, 0.999])
def test_mm1_sojourn_other_quantiles(q: float) -> None:
    assert sojourn_quantile(3.0, 4.0, 1, q) == pytest.approx(-math.log1p(-q) / 1.0, rel=1e-6)


@pytest.mark.parametrize("servers", [1, 4, 50])
def test_no_arrivals_leaves_service_time_only(servers: int) -> None:
    assert sojourn_quantile(0.0, 2.0, servers, 0.99) == pytest.approx(LN100 / 2.0, rel=1e-9)


def _simulated_sojourns(lam: float, mu: float, servers: int, customers: int, seed: int) -> list[float]:
    """FIFO with identical servers: each arrival takes whichever server frees first."""
    rng = random.Random(seed)
    free_at = [0.0] * servers
    now = 0.0
    sojourns = []
    for _ in range(customers):
        now += rng.expovariate(lam)
        start = max(now, heapq.heappop(free_at))
        done = start + rng.expovariate(mu)
        heapq.heappush(free_at, done)
        sojourns.append(done - now)
    return sojourns


def test_mm3_p99_matches_simulation() -> None:
    lam, mu, servers = 2.1, 1.0, 3
    sojourns = sorted(_simulated_sojourns(lam, mu, servers, 200_000, seed=20240601)[2_000:])  # drop warm-up
    empirical = sojourns[int(0.99 * len(sojourns))]
    model = sojourn_quantile(lam, mu, servers, 0.99)
    assert model == pytest.approx(empirical, rel=0.03)
    # A model that ignored queueing (the bare service quantile) would be far off, so the check has teeth.
    assert empirical > 1.2 * LN100 / mu


def test_equal_drain_and_service_rates_is_continuous() -> None:
    # c = 2, λ = μ gives β = cμ - λ = μ: the Erlang-2 branch.
    mu = 1.5
    at = sojourn_quantile(mu, mu, 2, 0.99)
    below = sojourn_quantile(mu * (1 - 1e-7), mu, 2, 0.99)
    above = sojourn_quantile(mu * (1 + 1e-7), mu, 2, 0.99)
    assert below < at < above
    assert at == pytest.approx(below, rel=1e-5)
    assert at == pytest.approx(above, rel=1e-5)
    # Away from the special point, the textbook β ≠ μ formula solves to the same answer.
    lam = 1.2 * mu
    t = sojourn_quantile(lam, mu, 2, 0.99)
    beta, wait = 2 * mu - lam, erlang_c(2, lam / mu)
    tail = (1 - wait) * math.exp(-mu * t) + wait * (beta * math.exp(-mu * t) - mu * math.exp(-beta * t)) / (beta - mu)
    assert tail == pytest.approx(0.01, rel=1e-6)


def test_equal_rates_solves_erlang2_tail() -> None:
    mu = 1.5
    t = sojourn_quantile(mu, mu, 2, 0.99)
    wait = erlang_c(2, 1.0)
    tail = (1 - wait) * math.exp(-mu * t) + wait * math.exp(-mu * t) * (1 + mu * t)
    assert tail == pytest.approx(0.01, rel=1e-6)


def test_sojourn_quantile_grows_with_load_and_falls_with_servers() -> None:
    by_load = [sojourn_quantile(lam, 1.0, 4, 0.99) for lam in (0.5, 2.0, 3.0, 3.9, 3.99)]
    assert by_load == sorted(by_load)
    by_servers = [sojourn_quantile(3.5, 1.0, c, 0.99) for c in (4, 5, 6, 10, 40)]
    assert by_servers == sorted(by_servers, reverse=True)
    assert by_servers[-1] == pytest.approx(LN100, rel=1e-6)


@pytest.mark.parametrize(("lam", "servers"), [(1.0, 1), (3.0, 3), (10.0, 2), (math.inf, 5)])
def test_unstable_queue_has_infinite_latency(lam: float, servers: int) -> None:
    assert sojourn_quantile(lam, 1.0, servers, 0.99) == math.inf


def test_many_servers_near_saturation_is_finite() -> None:
    t = sojourn_quantile(9_990.0, 1.0, 10_000, 0.99)
    assert LN100 < t < math.inf


@pytest.mark.parametrize(
    ("lam", "mu", "servers", "q"),
    [
        (1.0, 0.0, 1, 0.99),
        (1.0, -1.0, 1, 0.99),
        (1.0, math.inf, 1, 0.99),
        (1.0, 2.0, 0, 0.99),
        (-0.1, 2.0, 1, 0.99),
        (math.nan, 2.0, 1, 0.99),
        (1.0, 2.0, 1, 0.0),
        (1.0, 2.0, 1, 1.0),
        (1.0, 2.0, 1, 1.5),
    ],
)
def test_sojourn_quantile_rejects_bad_input(lam: float, mu: float, servers: int, q: float) -> None:
    with pytest.raises(ValueError):
        sojourn_quantile(lam, mu, servers, q)


# ---- workers_needed ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lam", "mu", "target", "delay", "q"),
    [
        (2.1, 1.0, 8.0, 0.0, 0.99),
        (2.1, 1.0, 5.0, 0.0, 0.99),
        (50.0, 2.0, 3.0, 0.5, 0.99),
        (0.5, 1.0, 10.0, 2.0, 0.95),
        (950.0, 1.0, 5.0, 0.0, 0.99),
        (9_000.0, 1.0, 5.0, 0.0, 0.99),
    ],
)
def test_workers_needed_is_minimal(lam: float, mu: float, target: float, delay: float, q: float) -> None:
    c = workers_needed(lam, mu, target, fixed_delay=delay, q=q)
    assert c is not None
    assert delay + sojourn_quantile(lam, mu, c, q) <= target
    if c > 1:
        assert delay + sojourn_quantile(lam, mu, c - 1, q) > target


def test_workers_needed_without_arrivals_is_one() -> None:
    assert workers_needed(0.0, 1.0, 5.0) == 1


def test_workers_needed_rises_with_load() -> None:
    needs = [_needed(lam, 1.0, 6.0) for lam in (0.1, 1.0, 5.0, 20.0, 100.0, 500.0)]
    assert needs == sorted(needs)
    assert needs[-1] > needs[0]


def test_workers_needed_falls_as_target_loosens() -> None:
    needs = [_needed(40.0, 1.0, target) for target in (5.0, 6.0, 10.0, 100.0)]
    assert needs == sorted(needs, reverse=True)
    assert needs[-1] == 41  # a loose target needs only stability


@pytest.mark.parametrize(("target", "delay"), [(5.0, 5.0), (5.0, 6.0), (0.0, 0.0)])
def test_workers_needed_none_when_delay_uses_the_target(target: float, delay: float) -> None:
    assert workers_needed(1.0, 100.0, target, fixed_delay=delay) is None


def test_workers_needed_none_when_service_alone_misses_the_target() -> None:
    mu = 1.0
    assert workers_needed(0.0, mu, 0.99 * LN100 / mu) is None
    assert workers_needed(5.0, mu, 3.0 + 0.99 * LN100 / mu, fixed_delay=3.0) is None
    assert workers_needed(5.0, mu, 3.0 + 1.01 * LN100 / mu, fixed_delay=3.0) is not None


def test_workers_needed_none_beyond_max_servers() -> None:
    assert workers_needed(20_000.0, 1.0, 10.0) is None
    assert workers_needed(30.0, 1.0, 10.0, max_servers=20) is None
    assert workers_needed(30.0, 1.0, 10.0, max_servers=40) is not None


def test_workers_needed_rejects_negative_delay() -> None:
    with pytest.raises(ValueError):
        workers_needed(1.0, 1.0, 10.0, fixed_delay=-1.0)


# ---- saturation_rate and forecast ----------------------------------------------------------------------------


def test_saturation_rate_is_total_capacity() -> None:
    assert saturation_rate(2.5, 4) == 10.0
    with pytest.raises(ValueError):
        saturation_rate(2.5, 0)


def test_forecast_fields() -> None:
    f = forecast(3.0, 2.0, servers=2, fixed_delay=1.5, target_seconds=6.0)
    assert isinstance(f, Forecast)
    assert f.model == MODEL
    assert (f.arrival_rate, f.service_rate, f.servers, f.fixed_delay) == (3.0, 2.0, 2, 1.5)
    assert f.utilisation == pytest.approx(0.75)
    assert f.saturation_rate == 4.0
    assert f.quantile == 0.99
    assert f.latency_quantile == pytest.approx(1.5 + sojourn_quantile(3.0, 2.0, 2, 0.99), rel=1e-12)
    assert f.target_seconds == 6.0
    assert f.workers_needed == workers_needed(3.0, 2.0, 6.0, fixed_delay=1.5)
    assert f.workers_needed is not None


def test_forecast_when_unstable() -> None:
    f = forecast(5.0, 1.0, servers=3, target_seconds=10.0, q=0.95)
    assert f is not None
    assert f.utilisation == pytest.approx(5 / 3)
    assert f.latency_quantile == math.inf
    assert f.workers_needed is not None
    assert f.workers_needed > 5


@pytest.mark.parametrize("mu", [0.0, -1.0])
def test_forecast_none_without_capacity(mu: float) -> None:
    assert forecast(1.0, mu, target_seconds=10.0) is None


@pytest.mark.parametrize(
    "kwargs",
    [{"servers": 0}, {"q": 1.0}, {"q": 0.0}, {"fixed_delay": -1.0}],
)
def test_forecast_rejects_bad_input(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        forecast(1.0, 2.0, target_seconds=10.0, **kwargs)


def test_forecast_rejects_negative_arrival_rate() -> None:
    with pytest.raises(ValueError):
        forecast(-1.0, 2.0, target_seconds=10.0)


def test_model_states_its_assumptions() -> None:
    for phrase in ("Poisson", "exponential", "FIFO", "steady state", "fixed delay"):
        assert phrase in MODEL
