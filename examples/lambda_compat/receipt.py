"""A handler in the style of AWS's "Lambda function handler in Python" sample: the root
logger set to INFO, configuration from environment variables, an order in the event.

(The AWS sample uploads the receipt to S3 with boto3; this one returns it instead.)
"""

import logging
import os

logger = logging.getLogger()
logger.setLevel("INFO")


def lambda_handler(event, context):
    """Builds the receipt of one order.

    Parameters:
        event: a dict with the order's Order_id, Amount and Item
        context: the Lambda runtime context

    Returns:
        a dict with a status code, a message and where the receipt would be stored
    """
    try:
        order_id = event["Order_id"]
        amount = event["Amount"]
        item = event["Item"]

        bucket_name = os.environ.get("RECEIPT_BUCKET")
        if not bucket_name:
            raise ValueError("Missing required environment variable RECEIPT_BUCKET")

        receipt_content = f"OrderID: {order_id}\nAmount: ${amount}\nItem: {item}"
        key = f"receipts/{order_id}.txt"

        logger.info(f"Successfully processed order {order_id} for receipt s3://{bucket_name}/{key}")
        return {"statusCode": 200, "message": "Receipt processed successfully",
                "location": f"s3://{bucket_name}/{key}", "receipt": receipt_content,
                "function": context.function_name}
    except Exception as e:
        logger.error(f"Error processing order: {str(e)}")
        raise
