"""A Powertools BatchProcessor SQS consumer: only the records that fail are retried."""

import json

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

processor = BatchProcessor(event_type=EventType.SQS)
logger = Logger()


def record_handler(record: SQSRecord) -> None:
    payment = json.loads(record.body)
    logger.info("payment received", extra={"payment_id": payment["id"],
                                           "receive_count": record.attributes.approximate_receive_count})
    if payment["amount"] <= 0:
        raise ValueError(f"invalid amount {payment['amount']} for payment {payment['id']}")
    logger.info("payment processed", extra={"payment_id": payment["id"], "message_id": record.message_id})


@logger.inject_lambda_context
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                    context=context)
