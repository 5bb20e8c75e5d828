"""The SNS shapes against AWS's documented examples and Powertools' models."""

from __future__ import annotations

import json

from aws_lambda_powertools.utilities.parser.models import SnsModel

from squall.events.sns import Notification, sns_event, sqs_attributes, sqs_envelope, subscription_arn, timestamp

#: AWS's sample event of the Lambda developer guide ("Using Lambda with Amazon SNS")
AWS_SAMPLE = json.loads("""{"Records": [{"EventVersion": "1.0", "EventSubscriptionArn": "arn:aws:sns:EXAMPLE",
  "EventSource": "aws:sns", "Sns": {"SignatureVersion": "1", "Timestamp": "1970-01-01T00:00:00.000Z",
  "Signature": "EXAMPLE", "SigningCertUrl": "EXAMPLE", "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
  "Message": "Hello from SNS!", "MessageAttributes": {"Test": {"Type": "String", "Value": "TestString"},
  "TestBinary": {"Type": "Binary", "Value": "TestBinary"}}, "Type": "Notification", "UnsubscribeUrl": "EXAMPLE",
  "TopicArn": "arn:aws:sns:EXAMPLE", "Subject": "TestInvoke"}}]}""")

#: AWS's example of what SNS writes into a subscribed SQS queue ("Fanout to Amazon SQS queues")
AWS_ENVELOPE = json.loads("""{"Type": "Notification", "MessageId": "63a3f6b6-d533-4a47-aef9-fcf5cf758c76",
  "TopicArn": "arn:aws:sns:us-west-2:123456789012:MyTopic", "Subject": "Testing publish to subscribed queues",
  "Message": "Hello world!", "Timestamp": "2012-03-29T05:12:16.901Z", "SignatureVersion": "1",
  "Signature": "EXAMPLEnTrFPa3...", "SigningCertURL": "https://sns.us-west-2.amazonaws.com/x.pem",
  "UnsubscribeURL": "https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=x"}""")

NOTE = Notification("95df01b4-ee98-5cb9-9903-4c221d41eb5e", "orders", "Hello from SNS!", 0.0, "TestInvoke",
                    {"Test": {"DataType": "String", "StringValue": "TestString"},
                     "TestBinary": {"DataType": "Binary", "BinaryValue": "VGVzdEJpbmFyeQ=="}})


def test_the_lambda_event_has_the_sample_events_shape():
    event = sns_event(NOTE, subscription_arn("orders", "function:f"))
    SnsModel.model_validate(event)
    assert set(event["Records"][0]) == set(AWS_SAMPLE["Records"][0])
    sns, sample = event["Records"][0]["Sns"], AWS_SAMPLE["Records"][0]["Sns"]
    assert set(sns) == set(sample)
    assert {k: sns[k] for k in ("Type", "MessageId", "Message", "Subject", "Timestamp", "SignatureVersion")} == {
        k: sample[k] for k in ("Type", "MessageId", "Message", "Subject", "Timestamp", "SignatureVersion")}
    assert sns["MessageAttributes"] == {"Test": {"Type": "String", "Value": "TestString"},
                                        "TestBinary": {"Type": "Binary", "Value": "VGVzdEJpbmFyeQ=="}}


def test_without_subject_or_attributes():
    bare = Notification("id", "orders", "m", 0.0)
    sns = sns_event(bare, "arn")["Records"][0]["Sns"]
    assert sns["Subject"] is None and sns["MessageAttributes"] == {}
    assert set(sqs_envelope(bare, "arn")) == set(AWS_ENVELOPE) - {"Subject"}


def test_the_queue_envelope_has_the_documented_shape():
    envelope = sqs_envelope(NOTE, subscription_arn("orders", "queue:q"))
    assert set(envelope) == set(AWS_ENVELOPE) | {"MessageAttributes"}
    assert list(envelope)[:4] == ["Type", "MessageId", "TopicArn", "Subject"]
    assert envelope["UnsubscribeURL"].endswith("SubscriptionArn=" + subscription_arn("orders", "queue:q"))


def test_raw_delivery_attributes_are_sqs_attributes():
    assert sqs_attributes(NOTE) == {
        "Test": {"stringValue": "TestString", "stringListValues": [], "binaryListValues": [], "dataType": "String"},
        "TestBinary": {"binaryValue": "VGVzdEJpbmFyeQ==", "stringListValues": [], "binaryListValues": [],
                       "dataType": "Binary"}}


def test_subscription_arns_are_stable_and_distinct():
    assert subscription_arn("t", "function:f") == subscription_arn("t", "function:f")
    assert subscription_arn("t", "function:f") != subscription_arn("t", "queue:f")
    assert timestamp(1333084336.901) == "2012-03-30T05:12:16.901Z"
