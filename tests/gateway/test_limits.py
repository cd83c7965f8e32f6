"""The token buckets on their own, on a given clock: per source, and per client address for unverified deliveries."""

from __future__ import annotations

import pytest

from flowhook.gateway.limits import AddressBuckets, TokenBucket


def test_a_bucket_passes_its_burst_then_says_how_long_to_wait() -> None:
    bucket = TokenBucket(rate=2, burst=3, now=0.0)
    assert [bucket.take(now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(now=0.0) == pytest.approx(0.5)
    assert bucket.take(now=0.5) == 0.0


def test_each_address_has_its_own_budget() -> None:
    buckets = AddressBuckets(rate=1, burst=2, max_addresses=10)
    assert [buckets.take("10.0.0.1", now=0.0) for _ in range(3)] == [0.0, 0.0, pytest.approx(1.0)]
    assert buckets.take("10.0.0.2", now=0.0) == 0.0
    assert buckets.take("10.0.0.1", now=1.0) == 0.0


def test_at_most_max_addresses_are_kept_the_least_recent_forgotten_first() -> None:
    buckets = AddressBuckets(rate=1, burst=1, max_addresses=3)
    for address in ("a", "b", "c"):
        assert buckets.take(address, now=0.0) == 0.0
    assert buckets.take("a", now=0.0) > 0  # a is used again: b is now the least recent
    assert buckets.take("d", now=0.0) == 0.0
    assert len(buckets) == 3
    assert buckets.take("b", now=0.0) == 0.0  # forgotten, so a full burst again (c went to make room)
    assert buckets.take("a", now=0.0) > 0  # a was kept, still empty
    assert len(buckets) == 3


def test_a_hundred_thousand_addresses_keep_only_the_cap() -> None:
    buckets = AddressBuckets(rate=1, burst=1, max_addresses=1000)
    for n in range(100_000):
        buckets.take(f"10.{n >> 16}.{(n >> 8) & 255}.{n & 255}", now=0.0)
    assert len(buckets) == 1000
