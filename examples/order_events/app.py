"""An e-commerce choreography on an event bus and a topic.

Checkout (`POST /orders`) puts one `order created` event on the `orders` bus and returns;
it knows nothing of what happens next. Each service reacts on its own rule: payment
charges the card, inventory reserves stock, shipping ships and publishes `order shipped`
to the `shipments` topic, where notification picks the orders whose customer asked to be
told; analytics gets a trimmed copy of every order on a queue. No service calls another,
so one failing delays none of the rest: each target has its own durable delivery,
retries and dead-letter queue. The bus keeps an archive, so orders can be replayed.
"""

import json

from squall import App

app = App("order_events")

BUS = "orders"
SOURCE = "shop.checkout"
ORDER_CREATED = {"source": [SOURCE], "detail-type": ["order created"]}
SHIPMENTS = "shipments"
#: what inventory knows; an order for anything else can never be reserved (a poison order)
CATALOG = {"mug": "Squall mug", "tea": "Storm tea", "hoodie": "Gale hoodie"}

app.bus(BUS)
app.archive("all-orders", bus=BUS, pattern={"source": [SOURCE]}, retention_days=30)


class UnknownProduct(Exception):
    """An order line names a product the catalog does not have: no retry can fix it."""


@app.http("POST", "/orders")
def checkout(event, ctx):
    """Accept an order and announce it; the reactions happen after the answer."""
    order = json.loads(event["body"] or "{}")
    if not order.get("id") or not order.get("items"):
        return {"statusCode": 400, "body": json.dumps({"error": "an order needs an id and items"})}
    answer = ctx.put_events([{"Source": SOURCE, "DetailType": "order created", "Detail": json.dumps(order),
                              "EventBusName": BUS, "Resources": [f"order/{order['id']}"]}])
    [entry] = answer["Entries"]
    if answer["FailedEntryCount"]:
        return {"statusCode": 502, "body": json.dumps(entry)}
    return {"statusCode": 202, "body": json.dumps({"order": order["id"], "event": entry["EventId"]})}


@app.on_event(ORDER_CREATED, bus=BUS, retry_attempts=2, max_event_age=3600, dlq="payment-failed")
def payment(event, ctx):
    """Charge once per order: a replayed or retried event finds the charge and stops."""
    order, charges = event["detail"], ctx.table("payments")
    if charges.get(order["id"]) is not None:
        ctx.log.info("already charged", order=order["id"], replay=event.get("replay-name"))
        return
    total = sum(line["price"] * line["quantity"] for line in order["items"])
    charges.put(order["id"], {"amount": round(total, 2), "event": event["id"]})


@app.function
def inventory(order, ctx):
    """Reserve each line's quantity (the rule's input_path hands over only the order)."""
    unknown = [line["sku"] for line in order["items"] if line["sku"] not in CATALOG]
    if unknown:
        raise UnknownProduct(f"order {order['id']}: unknown product(s) {', '.join(unknown)}")
    if ctx.table("reservations").get(order["id"]) is None:
        ctx.table("reservations").put(order["id"], {line["sku"]: line["quantity"] for line in order["items"]})


app.rule("reserve-stock", bus=BUS, pattern=ORDER_CREATED, targets=[
    {"function": "inventory", "input_path": "$.detail", "retry_attempts": 2, "dlq": "inventory-failed"},
])


@app.on_event(ORDER_CREATED, bus=BUS, retry_attempts=2, dlq="shipping-failed")
def shipping(event, ctx):
    """Ship the order and tell whoever listens, on a topic: shipping does not know who."""
    order = event["detail"]
    if ctx.table("shipments").get(order["id"]) is not None:
        return  # shipped already (a replay)
    tracking = f"TRK-{order['id']}"
    ctx.table("shipments").put(order["id"], {"tracking": tracking, "country": order.get("country", "")})
    attributes = {"event": "order shipped", "country": order.get("country", "")}
    if order.get("notify"):
        attributes["channel"] = order["notify"]
    ctx.publish(SHIPMENTS, json.dumps({"order": order["id"], "tracking": tracking}), attributes,
                subject="Your order is on its way")


@app.on_topic(SHIPMENTS, filter_policy={"event": ["order shipped"], "channel": ["email", "sms"]},
              dlq="notification-failed")
def notification(event, ctx):
    """Tell the customers who asked (the filter policy drops the others before any invocation)."""
    for record in event["Records"]:
        sns = record["Sns"]
        shipped = json.loads(sns["Message"])
        channel = sns["MessageAttributes"]["channel"]["Value"]
        ctx.table("notifications").put(shipped["order"], {"channel": channel, "subject": sns["Subject"],
                                                          "tracking": shipped["tracking"]})


app.rule("order-analytics", bus=BUS, pattern=ORDER_CREATED, targets=[
    {"queue": "analytics", "input_transformer": {
        "InputPathsMap": {"order": "$.detail.id", "country": "$.detail.country", "time": "$.time",
                          "replay": "$.replay-name"},
        "InputTemplate": '{"order": <order>, "country": <country>, "at": <time>, "replay": <replay>}'}},
])


@app.on_queue("analytics")
def analytics(event, ctx):
    """One row per delivery, replays included: analytics is rebuilt by replaying the archive."""
    for record in event["Records"]:
        ctx.table("sales").put(record["messageId"], json.loads(record["body"]))
