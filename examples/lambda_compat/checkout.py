"""Powertools Logger and Metrics: structured JSON logs and CloudWatch EMF metrics."""

import json

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
metrics = Metrics()  # namespace from POWERTOOLS_METRICS_NAMESPACE


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    order = json.loads(event["body"])
    total = sum(item["price"] * item["quantity"] for item in order["items"])
    metrics.add_dimension(name="channel", value=order.get("channel", "web"))
    metrics.add_metric(name="OrdersPlaced", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="OrderTotal", unit=MetricUnit.NoUnit, value=total)
    logger.info("order placed", extra={"order_id": order["id"], "total": total})
    return {"statusCode": 201, "body": json.dumps({"id": order["id"], "total": total})}
