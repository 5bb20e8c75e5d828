"""The order choreography: on the harness (every reaction, the filter policy, the poison
order's dead-letter queue, each service's independence) and once on a real node, with
the archive replayed through `squall events replay`."""

import json
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from squall.backends import open_backend
from squall.loader import load_app
from squall.testing import Harness
from tests.support import NodeProcess, squall, wait_until

APP_FILE = Path(__file__).with_name("app.py")


def order(order_id, *skus, notify=None, country="DE"):
    body = {"id": order_id, "country": country, "items": [{"sku": sku, "price": 10.0, "quantity": 2} for sku in skus]}
    return body | ({"notify": notify} if notify else {})


@pytest.fixture
def h():
    with Harness(load_app(str(APP_FILE))) as harness:
        yield harness


def rows(h, table):
    return dict(h.table(table).scan())


def test_one_checkout_reaches_every_service(h):
    answer = h.post("/orders", json=order("o1", "mug", "tea", notify="email"))
    assert answer.status_code == 202 and answer.json()["order"] == "o1"
    result = h.drain()
    assert result.failed == 0
    assert rows(h, "payments") == {"o1": {"amount": 40.0, "event": answer.json()["event"]}}
    assert rows(h, "reservations") == {"o1": {"mug": 2, "tea": 2}}
    assert rows(h, "shipments") == {"o1": {"tracking": "TRK-o1", "country": "DE"}}
    assert rows(h, "notifications") == {"o1": {"channel": "email", "subject": "Your order is on its way",
                                               "tracking": "TRK-o1"}}
    [sale] = rows(h, "sales").values()  # the input transformer's trimmed copy
    assert sale == {"order": "o1", "country": "DE", "at": sale["at"], "replay": None}
    assert datetime.fromisoformat(sale["at"].replace("Z", "+00:00")).tzinfo is not None


def test_the_filter_policy_notifies_only_customers_who_asked(h):
    h.post("/orders", json=order("quiet", "mug"))
    h.post("/orders", json=order("loud", "mug", notify="sms"))
    h.drain()
    assert set(rows(h, "shipments")) == {"quiet", "loud"}
    assert rows(h, "notifications") == {"loud": {"channel": "sms", "subject": "Your order is on its way",
                                                 "tracking": "TRK-loud"}}
    tally = h.deliveries("shipments")["function:notification"]
    assert (tally.delivered, tally.filtered, tally.failed) == (1, 1, 0)


def test_a_poison_order_ends_in_inventorys_dlq_and_stops_no_other_service(h):
    h.post("/orders", json=order("bad", "mug", "umbrella", notify="email"))
    h.post("/orders", json=order("good", "hoodie"))
    assert h.drain().failed == 3  # inventory's first attempt at the poison order and its two retries
    # inventory gave up on the poison order after its retries, and reserved the next one
    assert rows(h, "reservations") == {"good": {"hoodie": 2}}
    [dead] = h.backend.peek("inventory-failed", 10)
    assert json.loads(dead.body)["id"] == "bad"  # the target's input: the order itself
    attributes = {name: value["stringValue"] for name, value in dead.attributes.items() if not name.startswith("AWS.")}
    assert attributes == {"RULE_ARN": "arn:aws:events:us-east-1:000000000000:rule/orders/reserve-stock",
                          "TARGET_ARN": "arn:aws:lambda:us-east-1:000000000000:function:inventory",
                          "ERROR_CODE": "ERROR_FROM_TARGET", "ERROR_MESSAGE": "order bad: unknown product(s) umbrella"}
    # every other service handled both orders
    assert set(rows(h, "payments")) == set(rows(h, "shipments")) == {"bad", "good"}
    assert set(rows(h, "notifications")) == {"bad"}
    assert sorted(sale["order"] for sale in rows(h, "sales").values()) == ["bad", "good"]
    for dlq in ["payment-failed", "shipping-failed", "notification-failed"]:
        assert h.queue_stats(dlq).total == 0


def test_checkout_refuses_an_order_without_items(h):
    answer = h.post("/orders", json={"id": "empty", "items": []})
    assert answer.status_code == 400 and "items" in answer.json()["error"]
    assert h.drain().batches == 0


def iso(seconds):
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def test_on_a_node_orders_flow_and_a_replay_rebuilds_analytics_without_charging_twice(tmp_path):
    shutil.copy(APP_FILE, tmp_path / "app.py")
    url = f"sqlite:///{tmp_path}/.squall/state.db"

    def table(name):
        store = open_backend(url)
        try:
            return {item.key: item.value for item in store.table_scan(name)}
        finally:
            store.close()

    with NodeProcess(tmp_path / "app.py") as node, node.client() as client:
        started = time.time() - 1
        events = [client.post("/orders", json=order(f"n{i}", "mug", notify="email")).json()["event"] for i in (1, 2)]
        wait_until(lambda: len(table("sales")) == 2 and len(table("notifications")) == 2, timeout=20,
                   message="every service handled both orders")
        assert {charge["event"] for charge in table("payments").values()} == set(events)
        replay = squall("events", "replay", "--backend", url, "--archive", "all-orders", "--from", iso(started),
                        "--to", iso(time.time() + 1), "--name", "rebuild-analytics", cwd=tmp_path)
        assert replay.returncode == 0, replay.stderr
        assert "2 event(s)" in replay.stdout
        wait_until(lambda: len(table("sales")) == 4, timeout=20, message="the replayed orders in analytics")
        replayed = [sale for sale in table("sales").values() if sale["replay"]]
        assert sorted(s["order"] for s in replayed) == ["n1", "n2"]
        assert {s["replay"] for s in replayed} == {"rebuild-analytics"}
        # payment saw the replayed orders too, and charged nobody twice
        wait_until(lambda: node.log().count('"already charged"') == 2, timeout=20, message="payment's replays")
        assert {charge["event"] for charge in table("payments").values()} == set(events)
        assert len(table("notifications")) == 2
