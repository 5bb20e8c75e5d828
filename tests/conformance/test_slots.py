"""Slots: counting semaphores with expiring holders (cluster-wide reserved concurrency)."""

from __future__ import annotations

import pytest

from squall.errors import ConfigError
from tests.conformance.support import run_threads


def test_slots(backend, clock):
    first = backend.slot_acquire("fn", 2, "node-1", 10)
    second = backend.slot_acquire("fn", 2, "node-2", 10)
    assert first and second and first != second
    assert backend.slot_acquire("fn", 2, "node-3", 10) is None
    assert backend.slot_count("fn") == 2
    assert backend.slot_acquire("other", 1, "node-3", 10) is not None
    backend.slot_release("fn", first)
    assert backend.slot_count("fn") == 1
    third = backend.slot_acquire("fn", 2, "node-3", 10)
    assert third is not None
    assert backend.slot_acquire("fn", 2, "node-3", 10) is None
    clock.advance(11)  # every holder expired: their slots are free
    assert backend.slot_count("fn") == 0
    assert backend.slot_acquire("fn", 2, "node-4", 10) is not None
    assert backend.slot_acquire("fn", 2, "node-4", 10) is not None
    assert backend.slot_acquire("fn", 2, "node-4", 10) is None


def test_limit_zero_always_refuses(backend):
    assert backend.slot_acquire("fn", 0, "node", 10) is None
    assert backend.slot_count("fn") == 0


@pytest.mark.parametrize("call, text", [
    (lambda b: b.slot_acquire("fn", -1, "n", 10), "limit must be an integer >= 0, got -1"),
    (lambda b: b.slot_acquire("fn", 2, "n", 0), "ttl must be a finite number of seconds > 0, got 0"),
    (lambda b: b.slot_acquire("fn", 2, "n", -5), "ttl must be a finite number of seconds > 0, got -5"),
])
def test_bad_arguments_fail_alike_and_take_nothing(backend, call, text):
    with pytest.raises(ConfigError) as error:
        call(backend)
    assert str(error.value) == text
    assert backend.slot_count("fn") == 0


def test_releasing_unknown_or_expired_tokens(backend, clock):
    backend.slot_release("fn", "no-such-token")
    token = backend.slot_acquire("fn", 1, "n", 10)
    backend.slot_release("other", token)  # another key's: nothing happens
    assert backend.slot_count("fn") == 1
    clock.advance(11)
    backend.slot_release("fn", token)
    assert backend.slot_count("fn") == 0
    assert backend.slot_acquire("fn", 1, "n", 10) is not None


def test_concurrent_acquires_never_exceed_the_limit(backend, other):
    tokens = run_threads(lambda i: (backend, other)[i % 2].slot_acquire("fn", 3, f"n{i}", 30), 8)
    held = [t for t in tokens if t is not None]
    assert len(held) == 3 and len(set(held)) == 3
    assert backend.slot_count("fn") == other.slot_count("fn") == 3
