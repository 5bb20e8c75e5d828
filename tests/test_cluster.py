"""Leader and shard leases across nodes, on both backends (several backend objects on one
URL model several nodes; the fake clock drives lease expiry)."""

from __future__ import annotations

from squall.backends import open_backend
from squall.cluster import LeaderLease, ShardLeases


def nodes_on(backend_url, clock, count):
    return [open_backend(backend_url, clock=clock) for _ in range(count)]


def test_one_leader_at_a_time_and_failover(backend_url, clock):
    a, b, c = nodes_on(backend_url, clock, 3)
    leases = [LeaderLease(store, "nightly", f"node-{i}", ttl=10) for i, store in enumerate((a, b, c))]
    assert [lease.renew() for lease in leases] == [True, False, False]
    clock.advance(5)
    assert [lease.renew() for lease in leases] == [True, False, False]  # renewal keeps it
    clock.advance(11)  # node-0 stops renewing (crashed): its lease expires
    assert [lease.renew() for lease in leases[1:]] == [True, False]
    assert a.lease_holder("leader.nightly") == "node-1"
    assert leases[0].renew() is False  # the old leader does not get it back while node-1 renews
    leases[1].resign()
    assert leases[2].renew() is True


def owners(shard_leases):
    owned = {}
    for leases in shard_leases:
        for shard in leases.owned:
            assert shard not in owned, f"shard {shard} held twice"
            owned[shard] = leases.holder
    return owned


def settle(shard_leases, rounds=3):
    for _ in range(rounds):
        for leases in shard_leases:
            leases.rebalance()


def test_shards_spread_over_nodes_and_rebalance(backend_url, clock):
    stores = nodes_on(backend_url, clock, 3)
    ids = ["node-a", "node-b", "node-c"]

    def heartbeat(alive):
        for node_id, store in zip(ids, stores, strict=True):
            if node_id in alive:
                store.node_heartbeat(node_id, {}, ttl=6)

    # one node: it takes all 8 shards
    heartbeat({"node-a"})
    first = ShardLeases(stores[0], "clicks", 8, "node-a", ttl=6)
    settle([first])
    assert first.owned == set(range(8))

    # two more join: ownership spreads to at most ceil(8/3) = 3 each, every shard owned once
    heartbeat(set(ids))
    all_leases = [first] + [ShardLeases(store, "clicks", 8, node_id, ttl=6)
                            for node_id, store in zip(ids[1:], stores[1:], strict=True)]
    settle(all_leases)
    owned = owners(all_leases)
    assert sorted(owned) == list(range(8))
    assert all(len(leases.owned) <= 3 for leases in all_leases)
    assert all(leases.owned for leases in all_leases)

    # node-c dies: no heartbeat, no renewals; after the TTL the survivors take its shards
    lost = set(all_leases[2].owned)
    clock.advance(7)
    heartbeat({"node-a", "node-b"})
    survivors = all_leases[:2]
    settle(survivors)
    owned = owners(survivors)
    assert sorted(owned) == list(range(8))
    assert lost <= set(owned)
    assert all(len(leases.owned) == 4 for leases in survivors)


def test_shard_handover_on_clean_leave(backend_url, clock):
    a, b = nodes_on(backend_url, clock, 2)
    a.node_heartbeat("a", {}, ttl=30)
    b.node_heartbeat("b", {}, ttl=30)
    la, lb = ShardLeases(a, "s", 4, "a", ttl=30), ShardLeases(b, "s", 4, "b", ttl=30)
    settle([la, lb])
    assert len(la.owned) == len(lb.owned) == 2
    la.release_all()
    a.node_remove("a")
    lb.rebalance()  # no waiting for a TTL: the leases were handed back
    assert lb.owned == {0, 1, 2, 3}
