"""Tests of the shop example: in-process with squall.testing, plus one run on a real node."""

import json
import shutil
from pathlib import Path

import pytest

from squall.loader import load_app
from squall.testing import Harness
from tests.support import NodeProcess, wait_until

APP_FILE = Path(__file__).with_name("app.py")
ADA = {"id": "ada", "name": "Ada Lovelace", "email": "ada@example.com"}
BOB = {"id": "bob", "name": "Bob", "email": "bob@example.com"}
TEA = {"id": "tea", "name": "Tea", "price": 4.5}
MUG = {"id": "mug", "name": "Mug", "price": 12}


@pytest.fixture
def h():
    # loaded by path: several examples may each have an app.py
    with Harness(load_app(str(APP_FILE))) as harness:
        yield harness


@pytest.fixture
def shop(h):
    """Two users and two products."""
    for path, item in [("/users", ADA), ("/users", BOB), ("/products", TEA), ("/products", MUG)]:
        assert h.post(path, json=item).status_code == 201
    return h


def order(order_id, user="ada", **quantities):
    return {"id": order_id, "user": user, "items": [{"product": p, "quantity": q} for p, q in quantities.items()]}


def message(response) -> str:
    assert response.headers["content-type"] == "application/json"
    return response.json()["message"]


# ---- users and products ------------------------------------------------------------

def test_user_crud(h):
    created = h.post("/users", json=ADA)
    assert (created.status_code, created.json()) == (201, ADA)
    assert h.get("/users/ada").json() == ADA

    renamed = {**ADA, "name": "Augusta Ada King"}
    updated = h.put("/users/ada", json={"name": renamed["name"], "email": ADA["email"]})
    assert (updated.status_code, updated.json()) == (200, renamed)
    assert h.get("/users").json() == [renamed]

    assert h.delete("/users/ada").status_code == 204
    gone = h.get("/users/ada")
    assert gone.status_code == 404
    assert message(gone) == "user 'ada' not found"
    assert h.get("/users").json() == []


def test_product_crud(h):
    assert h.post("/products", json=TEA).status_code == 201
    assert h.post("/products", json=MUG).status_code == 201
    assert h.get("/products").json() == [MUG, TEA]  # key order
    assert h.put("/products/tea", json={"name": "Green tea", "price": 5}).json() == \
        {"id": "tea", "name": "Green tea", "price": 5}
    assert h.delete("/products/mug").status_code == 204
    assert h.get("/products/mug").status_code == 404
    assert [p["id"] for p in h.get("/products").json()] == ["tea"]


def test_duplicate_id_is_a_conflict_and_keeps_the_original(h):
    assert h.post("/users", json=ADA).status_code == 201
    duplicate = h.post("/users", json={**ADA, "name": "Impostor"})
    assert duplicate.status_code == 409
    assert message(duplicate) == "user 'ada' already exists"
    assert h.get("/users/ada").json()["name"] == ADA["name"]


@pytest.mark.parametrize("path, body, error", [
    ("/users", {"id": "x", "email": "x@example.com"}, "'name' is required and must be a non-empty string"),
    ("/users", {"id": "x", "name": "X", "email": "nope"}, "'email' must be an email address"),
    ("/users", {"name": "X", "email": "x@example.com"}, "'id' is required and must be a non-empty string"),
    ("/users", [ADA], "request body must be a JSON object"),
    ("/products", {"id": "p", "name": "P", "price": -1}, "'price' must not be negative"),
    ("/products", {"id": "p", "name": "P", "price": "cheap"}, "'price' is required and must be a number"),
    ("/products", {"id": "p", "name": "P", "price": True}, "'price' is required and must be a number"),
])
def test_invalid_bodies_are_400_with_the_reason(h, path, body, error):
    response = h.post(path, json=body)
    assert response.status_code == 400
    assert message(response) == error
    assert h.get(path).json() == []


def test_bodies_that_are_not_json(h):
    as_text = h.post("/users", content="name=ada", headers={"content-type": "text/plain"})
    assert (as_text.status_code, message(as_text)) == (400, "request body must be JSON")
    empty = h.post("/users")
    assert (empty.status_code, message(empty)) == (400, "request body must be JSON")
    # declared as JSON but malformed: it reaches the function, which answers as it chooses
    malformed = h.post("/users", content="{oops", headers={"content-type": "application/json"})
    assert (malformed.status_code, message(malformed)) == (400, "request body must be JSON")


def test_update_and_delete_errors(h):
    assert h.post("/users", json=ADA).status_code == 201
    assert h.put("/users/zed", json=BOB | {"id": "zed"}).status_code == 404
    mismatch = h.put("/users/ada", json=BOB)
    assert (mismatch.status_code, message(mismatch)) == \
        (400, "'id' in the body ('bob') differs from the one in the path ('ada')")
    invalid = h.put("/users/ada", json={"name": "", "email": "ada@example.com"})
    assert invalid.status_code == 400
    assert h.get("/users/ada").json() == ADA
    assert h.delete("/users/zed").status_code == 404


# ---- orders ----------------------------------------------------------------------------

def test_order_is_priced_stored_and_listed_per_user(shop):
    created = shop.post("/orders", json=order("o1", tea=2, mug=1))
    assert created.status_code == 201
    assert created.json() == {"id": "o1", "user": "ada", "total": 21.0, "items": [
        {"product": "tea", "quantity": 2, "price": 4.5}, {"product": "mug", "quantity": 1, "price": 12}]}
    assert shop.get("/orders/o1").json() == created.json()

    assert shop.post("/orders", json=order("o2", user="bob", tea=1)).status_code == 201
    assert shop.post("/orders", json=order("o3", mug=3)).status_code == 201
    assert [o["id"] for o in shop.get("/orders", params={"user": "ada"}).json()] == ["o1", "o3"]
    assert [o["id"] for o in shop.get("/orders", params={"user": "bob"}).json()] == ["o2"]
    assert shop.get("/orders", params={"user": "nobody"}).json() == []
    assert len(shop.get("/orders").json()) == 3


def test_order_keeps_the_price_it_was_placed_at(shop):
    assert shop.post("/orders", json=order("o1", tea=2)).json()["total"] == 9.0
    assert shop.put("/products/tea", json={"name": "Tea", "price": 100}).status_code == 200
    assert shop.get("/orders/o1").json()["total"] == 9.0


@pytest.mark.parametrize("body, status, error", [
    (order("o1", user="zed", tea=1), 404, "user 'zed' not found"),
    (order("o1", tea=1, caviar=1), 404, "product 'caviar' not found"),
    (order("o1"), 400, "'items' is required and must be a non-empty list of {product, quantity}"),
    (order("o1", tea=0), 400, "'quantity' must be a positive integer"),
    (order("o1", tea=1.5), 400, "'quantity' is required and must be a positive integer"),
    ({"id": "o1", "user": "ada", "items": ["tea"]}, 400, "each item must be an object {product, quantity}"),
    ({"user": "ada", "items": [{"product": "tea", "quantity": 1}]}, 400,
     "'id' is required and must be a non-empty string"),
])
def test_invalid_orders_are_rejected_and_not_stored(shop, body, status, error):
    response = shop.post("/orders", json=body)
    assert (response.status_code, message(response)) == (status, error)
    assert shop.get("/orders/o1").status_code == 404
    assert shop.queue_stats("order-events").total == 0


def test_duplicate_order_is_a_conflict_and_sends_no_event(shop):
    assert shop.post("/orders", json=order("o1", tea=1)).status_code == 201
    again = shop.post("/orders", json=order("o1", mug=5))
    assert (again.status_code, message(again)) == (409, "order 'o1' already exists")
    assert shop.get("/orders/o1").json()["total"] == 4.5
    assert shop.queue_stats("order-events").total == 1


# ---- the order-events projection ------------------------------------------------------

def test_order_events_update_the_per_user_summary(shop):
    for body in [order("o1", tea=2), order("o2", mug=1), order("o3", user="bob", tea=1)]:
        assert shop.post("/orders", json=body).status_code == 201
    assert shop.get("/users/ada/stats").json() == {"user": "ada", "orders": 0, "spent": 0}

    drained = shop.drain("order-events")
    assert (drained.succeeded, drained.failed) == (3, 0)
    assert shop.get("/users/ada/stats").json() == {"user": "ada", "orders": 2, "spent": 21.0}
    assert shop.get("/users/bob/stats").json() == {"user": "bob", "orders": 1, "spent": 4.5}
    assert shop.get("/users/zed/stats").status_code == 404


def test_redelivered_event_is_counted_once(shop):
    assert shop.post("/orders", json=order("o1", tea=2)).status_code == 201
    shop.drain("order-events")
    shop.send("order-events", json.dumps({"type": "OrderPlaced", "order": "o1", "user": "ada", "total": 9.0}))
    assert shop.drain("order-events").succeeded == 1
    assert shop.get("/users/ada/stats").json() == {"user": "ada", "orders": 1, "spent": 9.0}


def test_malformed_event_ends_in_the_dead_letter_queue(shop):
    shop.send("order-events", "not json")
    drained = shop.drain("order-events")
    assert drained.succeeded == 0 and drained.failed == 3  # max_receive_count=3
    assert [m.body for m in shop.dead_letters("order-events")] == ["not json"]


# ---- on a real node --------------------------------------------------------------------

def test_shop_on_a_real_node(tmp_path):
    """The Quick start path: `squall run` forks instances, the consumer runs in the background."""
    app_path = Path(shutil.copy(APP_FILE, tmp_path / "app.py"))
    with NodeProcess(app_path) as node, node.client() as client:
        assert client.post("/users", json=ADA).status_code == 201
        assert client.post("/products", json=TEA).status_code == 201
        created = client.post("/orders", json=order("o1", tea=3))
        assert (created.status_code, created.json()["total"]) == (201, 13.5)
        assert client.post("/orders", json=order("o1", tea=3)).status_code == 409
        missing = client.post("/orders", json=order("o2", user="zed", tea=1))
        assert (missing.status_code, missing.json()) == (404, {"message": "user 'zed' not found"})
        assert client.get("/orders", params={"user": "ada"}).json() == [created.json()]
        wait_until(lambda: client.get("/users/ada/stats").json()["orders"] == 1, timeout=15,
                   message="the order-events consumer to update the summary")
        assert client.get("/users/ada/stats").json() == {"user": "ada", "orders": 1, "spent": 13.5}
    assert (tmp_path / ".squall" / "state.db").exists()  # the default state location, next to the app
