"""A small shop API: users, products and orders (API Gateway -> function -> table).

    squall dev examples/rest_api/app.py
    curl -X POST localhost:8000/users -d '{"id": "ada", "name": "Ada", "email": "ada@example.com"}'

Each route is a function with its own instances; state lives in tables. Placing an order
also sends an `order-events` message, which `count_orders` consumes to keep a per-user
summary (a small read model) that `GET /users/{id}/stats` serves.
"""

import base64
import functools
import json

from squall import App
from squall.errors import ConditionFailed

app = App("shop")


class HttpError(Exception):
    """Raised by a handler to answer with `status` and a JSON `{"message": ...}` body."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def respond(status: int, body) -> dict:
    """A Lambda proxy response with a JSON body."""
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}


def json_api(handler):
    """Turn an HttpError raised by `handler` into its JSON error response."""

    @functools.wraps(handler)
    def wrapper(event, ctx):
        try:
            return handler(event, ctx)
        except HttpError as error:
            return respond(error.status, {"message": str(error)})

    return wrapper


def read_body(event) -> dict:
    """The request body as a JSON object, or a 400."""
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8", "replace")
    try:
        data = json.loads(body)
    except ValueError:
        raise HttpError(400, "request body must be JSON") from None
    if not isinstance(data, dict):
        raise HttpError(400, "request body must be a JSON object")
    return data


def require(data: dict, field: str, kind, what: str):
    """`data[field]` if it is a `kind`, else a 400 naming the field."""
    value = data.get(field)
    if isinstance(value, bool) or not isinstance(value, kind) or value in ("", []):
        raise HttpError(400, f"'{field}' is required and must be {what}")
    return value


def validate_user(data: dict) -> dict:
    email = require(data, "email", str, "an email address")
    if "@" not in email:
        raise HttpError(400, "'email' must be an email address")
    return {"name": require(data, "name", str, "a non-empty string"), "email": email}


def validate_product(data: dict) -> dict:
    price = require(data, "price", (int, float), "a number")
    if price < 0:
        raise HttpError(400, "'price' must not be negative")
    return {"name": require(data, "name", str, "a non-empty string"), "price": price}


# ---- generic CRUD on one table -----------------------------------------------------

def create(ctx, table: str, event, validate) -> dict:
    data = read_body(event)
    item = {"id": require(data, "id", str, "a non-empty string"), **validate(data)}
    try:
        ctx.table(table).put(item["id"], item, if_absent=True)  # never overwrite: a duplicate id is a 409
    except ConditionFailed:
        raise HttpError(409, f"{table[:-1]} {item['id']!r} already exists") from None
    return respond(201, item)


def fetch(ctx, table: str, key: str) -> dict:
    item = ctx.table(table).get(key)
    if item is None:
        raise HttpError(404, f"{table[:-1]} {key!r} not found")
    return item


def update(ctx, table: str, event, validate) -> dict:
    key = event["pathParameters"]["id"]
    data = read_body(event)
    if data.get("id", key) != key:
        raise HttpError(400, f"'id' in the body ({data['id']!r}) differs from the one in the path ({key!r})")
    fetch(ctx, table, key)
    item = {"id": key, **validate(data)}
    ctx.table(table).put(key, item)
    return item


def remove(ctx, table: str, event) -> dict:
    key = event["pathParameters"]["id"]
    if ctx.table(table).delete(key) is None:
        raise HttpError(404, f"{table[:-1]} {key!r} not found")
    return {"statusCode": 204}


# ---- users and products: the same five routes over their own table -----------------

def crud(table: str, validate) -> None:
    """Declare POST/GET /<table>, GET/PUT/DELETE /<table>/{id}: five functions, each with
    its own instances, named like `create_user` and `list_users`."""
    one = table[:-1]
    app.http("POST", f"/{table}", json_api(lambda event, ctx: create(ctx, table, event, validate)),
             name=f"create_{one}")
    app.http("GET", f"/{table}", lambda event, ctx: [item for _, item in ctx.table(table).scan()],
             name=f"list_{table}")
    app.http("GET", f"/{table}/{{id}}", json_api(lambda event, ctx: fetch(ctx, table, event["pathParameters"]["id"])),
             name=f"get_{one}")
    app.http("PUT", f"/{table}/{{id}}", json_api(lambda event, ctx: update(ctx, table, event, validate)),
             name=f"update_{one}")
    app.http("DELETE", f"/{table}/{{id}}", json_api(lambda event, ctx: remove(ctx, table, event)),
             name=f"delete_{one}")


crud("users", validate_user)
crud("products", validate_product)


@app.http("GET", "/users/{id}/stats")
@json_api
def user_stats(event, ctx):
    """The read model `count_orders` keeps up to date."""
    user = fetch(ctx, "users", event["pathParameters"]["id"])
    stats = ctx.table("user-stats").get(user["id"], {"orders": 0, "spent": 0})
    return {"user": user["id"], "orders": stats["orders"], "spent": stats["spent"]}


# ---- orders --------------------------------------------------------------------------

@app.http("POST", "/orders", timeout=5)
@json_api
def create_order(event, ctx):
    """Check the user and every product, price the order, store it, announce it."""
    data = read_body(event)
    order_id = require(data, "id", str, "a non-empty string")
    user = fetch(ctx, "users", require(data, "user", str, "a user id"))
    lines = []
    for line in require(data, "items", list, "a non-empty list of {product, quantity}"):
        if not isinstance(line, dict):
            raise HttpError(400, "each item must be an object {product, quantity}")
        quantity = require(line, "quantity", int, "a positive integer")
        if quantity < 1:
            raise HttpError(400, "'quantity' must be a positive integer")
        product = fetch(ctx, "products", require(line, "product", str, "a product id"))
        lines.append({"product": product["id"], "quantity": quantity, "price": product["price"]})
    total = round(sum(line["price"] * line["quantity"] for line in lines), 2)
    order = {"id": order_id, "user": user["id"], "items": lines, "total": total}
    try:
        ctx.table("orders").put(order_id, order, if_absent=True)
    except ConditionFailed:
        raise HttpError(409, f"order {order_id!r} already exists") from None
    ctx.queue("order-events").send(json.dumps({"type": "OrderPlaced", "order": order_id,
                                               "user": user["id"], "total": total}))
    ctx.log.info("order placed", order=order_id, user=user["id"], total=total)
    return respond(201, order)


@app.http("GET", "/orders/{id}")
@json_api
def get_order(event, ctx):
    return fetch(ctx, "orders", event["pathParameters"]["id"])


@app.http("GET", "/orders")
def list_orders(event, ctx):
    """All orders, or one user's with `?user=ID`."""
    user = (event.get("queryStringParameters") or {}).get("user")
    return [order for _, order in ctx.table("orders").scan() if user is None or order["user"] == user]


# max_concurrency=1: one batch at a time, so the read-modify-write below never races itself.
@app.on_queue("order-events", batch_size=10, max_receive_count=3, max_concurrency=1)
def count_orders(event, ctx):
    """Fold OrderPlaced events into a per-user summary.

    Delivery is at least once, so the summary remembers which orders it has counted and a
    redelivered message changes nothing.
    """
    stats = ctx.table("user-stats")
    for record in event["Records"]:
        placed = json.loads(record["body"])
        summary = stats.get(placed["user"], {"orders": 0, "spent": 0, "counted": []})
        if placed["order"] in summary["counted"]:
            continue
        summary["orders"] += 1
        summary["spent"] = round(summary["spent"] + placed["total"], 2)
        summary["counted"].append(placed["order"])
        stats.put(placed["user"], summary)
