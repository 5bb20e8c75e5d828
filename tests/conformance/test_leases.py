"""Leases: one holder at a time, with a TTL (leader election, shard ownership)."""

from __future__ import annotations

import math

import pytest

from squall.errors import ConfigError
from tests.conformance.support import run_threads


def test_leases(backend, clock):
    assert backend.lease_holder("leader") is None
    assert backend.lease_acquire("leader", "a", 10) is True
    assert backend.lease_acquire("leader", "b", 10) is False
    assert backend.lease_holder("leader") == "a"
    clock.advance(8)
    assert backend.lease_acquire("leader", "a", 10) is True  # renewal extends to +18
    clock.advance(5)
    assert backend.lease_acquire("leader", "b", 10) is False
    assert backend.lease_holder("leader") == "a"
    clock.advance(6)  # expired
    assert backend.lease_holder("leader") is None
    assert backend.lease_acquire("leader", "b", 10) is True
    assert backend.lease_release("leader", "a") is False
    assert backend.lease_holder("leader") == "b"
    assert backend.lease_acquire("other", "a", 10) is True  # leases are independent
    assert backend.lease_release("leader", "b") is True
    assert backend.lease_holder("leader") is None
    assert backend.lease_acquire("leader", "a", 10) is True


def test_releasing_an_expired_lease_reports_it_was_not_held(backend, clock):
    assert backend.lease_acquire("leader", "a", 10) is True
    clock.advance(11)
    assert backend.lease_release("leader", "a") is False
    assert backend.lease_holder("leader") is None
    assert backend.lease_acquire("leader", "b", 10) is True


@pytest.mark.parametrize("ttl", [0, -1, math.nan, math.inf])
def test_a_lease_needs_a_positive_ttl(backend, ttl):
    """A zero TTL used to "succeed" with a lease nobody held on both backends."""
    with pytest.raises(ConfigError) as error:
        backend.lease_acquire("l", "a", ttl)
    assert str(error.value) == f"ttl must be a finite number of seconds > 0, got {ttl!r}"
    assert backend.lease_holder("l") is None


def test_releasing_what_was_never_held(backend):
    assert backend.lease_release("never", "a") is False
    assert backend.lease_acquire("l", "a", 10)
    assert backend.lease_release("l", "b") is False
    assert backend.lease_holder("l") == "a"


def test_two_backends_share_leases(backend, other):
    assert other.lease_acquire("l", "other", 10)
    assert not backend.lease_acquire("l", "backend", 10)
    assert backend.lease_holder("l") == "other"


def test_concurrent_acquires_have_one_winner(backend, other):
    won = run_threads(lambda i: (backend, other)[i % 2].lease_acquire("leader", f"node-{i}", 10), 6)
    assert won.count(True) == 1
    assert backend.lease_holder("leader") == f"node-{won.index(True)}"
