"""Nodes: a registry of live nodes with heartbeat TTLs."""

from __future__ import annotations

import pytest

from squall.errors import ConfigError


def test_nodes(backend, clock):
    assert backend.nodes() == []
    backend.node_heartbeat("n2", {"port": 2}, 10)
    backend.node_heartbeat("n1", {"port": 1, "tags": ["x"]}, 10)
    assert [(n.node_id, n.info, n.seen) for n in backend.nodes()] == [
        ("n1", {"port": 1, "tags": ["x"]}, clock.now), ("n2", {"port": 2}, clock.now)]
    clock.advance(5)
    backend.node_heartbeat("n1", {"port": 11}, 10)
    clock.advance(6)
    assert [(n.node_id, n.info, n.seen) for n in backend.nodes()] == [("n1", {"port": 11}, clock.now - 6)]
    backend.node_remove("n1")
    assert backend.nodes() == []


@pytest.mark.parametrize("call, text", [
    (lambda b: b.node_heartbeat("n", {}, 0), "ttl must be a finite number of seconds > 0, got 0"),
    (lambda b: b.node_heartbeat("n", {"x": {1}}, 10),
     "info of node 'n' must be JSON-serialisable: Object of type set is not JSON serializable"),
])
def test_bad_heartbeats_fail_alike_and_register_nothing(backend, call, text):
    with pytest.raises(ConfigError) as error:
        call(backend)
    assert str(error.value) == text
    assert backend.nodes() == []


def test_removing_an_unknown_node(backend):
    backend.node_remove("never")
    assert backend.nodes() == []


def test_dead_nodes_are_forgotten(backend, other, clock):
    backend.node_heartbeat("dead", {}, 5)
    other.node_heartbeat("alive", {"n": 1}, 60)
    clock.advance(10)
    other.node_heartbeat("alive", {"n": 2}, 60)
    assert [(n.node_id, n.info) for n in backend.nodes()] == [("alive", {"n": 2})]
    backend.node_heartbeat("dead", {"back": True}, 5)  # it may come back
    assert [n.node_id for n in other.nodes()] == ["alive", "dead"]
