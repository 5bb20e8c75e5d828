"""EventBridge's shapes: input paths and transformers against AWS's documented examples,
and PutEvents' request and entry checks."""

from __future__ import annotations

import json

import pytest

from squall.errors import ConfigError
from squall.events.eventbridge import Entry, EntryError, check_request, entry_event, results, rule_arn
from squall.events.transform import Context, InputTransformer, input_path

#: the EC2 event of AWS's input transformation examples
EC2 = {"version": "0", "id": "7bf73129-1428-4cd3-a780-95db273d1602", "detail-type": "EC2 Instance State-change "
       "Notification", "source": "aws.ec2", "account": "123456789012", "time": "2015-11-11T21:29:54Z",
       "region": "us-east-1", "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111"],
       "detail": {"instance-id": "i-0123456789", "state": "RUNNING"}}
PATHS = {"instance": "$.detail.instance-id", "state": "$.detail.state"}
CONTEXT = Context("my-rule", "arn:aws:events:us-east-1:123456789012:rule/my-rule", "2015-11-11T21:29:55Z")


def render(template: str, paths: dict | None = None) -> str:
    return InputTransformer.parse("t", {"InputPathsMap": PATHS if paths is None else paths,
                                        "InputTemplate": template}).render(EC2, CONTEXT)


@pytest.mark.parametrize(("template", "output"), [
    # AWS's examples: a string, a string with quotes, JSON with placeholders out of strings
    ('"<instance> is in state <state>"', '"i-0123456789 is in state RUNNING"'),
    ('"<instance> is in state \\"<state>\\""', '"i-0123456789 is in state \\"RUNNING\\""'),
    ('{"instance" : <instance>, "state": [9, <state>, true], "Transformed" : "Yes"}',
     '{"instance" : "i-0123456789", "state": [9, "RUNNING", true], "Transformed" : "Yes"}'),
    ('{"myInstance": <instance>,"myStatus": "<instance> is in state \\"<state>\\""}',
     '{"myInstance": "i-0123456789","myStatus": "i-0123456789 is in state \\"RUNNING\\""}'),
])
def test_the_documented_examples(template, output):
    assert render(template) == output
    assert json.loads(render(template)) == json.loads(output)


def test_objects_in_strings_lose_their_quotes_and_missing_values_are_null_or_nothing():
    paths = {"detail": "$.detail", "gone": "$.detail.nope"}
    assert json.loads(render('{"d": "Detail <detail>", "raw": <detail>, "g": <gone>, "s": "[<gone>]"}', paths)) == {
        "d": "Detail {instance-id: i-0123456789, state: RUNNING}", "raw": EC2["detail"], "g": None, "s": "[]"}


def test_predefined_variables():
    out = json.loads(render('{"rule": "<aws.events.rule-name>", "arn": <aws.events.rule-arn>, '
                            '"at": "<aws.events.event.ingestion-time>", "event": <aws.events.event>, '
                            '"whole": <aws.events.event.json>}', {}))
    assert out["rule"] == "my-rule" and out["arn"] == CONTEXT.rule_arn and out["at"] == "2015-11-11T21:29:55Z"
    assert out["whole"] == EC2 and out["event"] == {k: v for k, v in EC2.items() if k != "detail"}


def test_input_paths_of_the_documented_subset():
    assert input_path("t", "$.detail").find(EC2) == EC2["detail"]
    assert input_path("t", "$.resources[0]").find(EC2) == EC2["resources"][0]
    assert input_path("t", "$.detail.*").find(EC2) == ["i-0123456789", "RUNNING"]
    assert input_path("t", "$.a/b").find({"a/b": 1}) == 1
    for bad in ("detail", "$['detail']", "$..detail", "$.", 5):
        with pytest.raises(ConfigError, match="invalid JSON path"):
            input_path("t", bad)


@pytest.mark.parametrize(("transformer", "error"), [
    ({"InputTemplate": '{<instance>: 1}', "InputPathsMap": PATHS}, "<instance> cannot be an object key"),
    ({"InputTemplate": '{"<instance>": 1}', "InputPathsMap": PATHS}, "<instance> cannot be an object key"),
    ({"InputTemplate": '"<who>"'}, "<who> is neither in InputPathsMap nor a predefined variable"),
    ({"InputTemplate": '"x <aws.events.event.json>"'}, "can only be the value of a JSON field"),
    ({"InputTemplate": '{"a": <instance>,}', "InputPathsMap": PATHS}, "InputTemplate is not valid JSON"),
    ({"InputTemplate": "x", "InputPathsMap": {"aws.x": "$.a"}}, "invalid InputPathsMap variable 'aws.x'"),
    ({"InputTemplate": ""}, "InputTemplate must be a string of 1 to 8192 characters"),
    ({"InputTemplate": "x", "InputPathsMap": {f"v{i}": "$.a" for i in range(101)}}, "at most 100"),
    ({"InputTemplate": "x", "Extra": 1}, "input_transformer must be"),
])
def test_bad_transformers_name_the_bad_part(transformer, error):
    with pytest.raises(ConfigError, match=error.replace("(", r"\(").replace("[", r"\[")):
        InputTransformer.parse("rule 'r' target 0", transformer)


def test_put_events_request_limits():
    entry = {"Source": "s", "DetailType": "d", "Detail": "{}"}
    with pytest.raises(ConfigError, match="between 1 and 10"):
        check_request([entry] * 11)
    with pytest.raises(ConfigError, match="between 1 and 10"):
        check_request([])
    with pytest.raises(ConfigError, match="over the limit"):
        check_request([{**entry, "Detail": json.dumps({"x": "a" * 262_144})}])
    assert len(check_request([entry] * 10)) == 10


def test_entries_become_events_or_errors():
    made = entry_event({"Source": "s", "DetailType": "d", "Detail": '{"a": 1}', "Time": "2024-05-01T12:00:00Z",
                        "EventBusName": "arn:aws:events:us-east-1:000000000000:event-bus/orders"}, 0.0)
    assert isinstance(made, Entry) and made.bus == "orders"
    assert made.event["time"] == "2024-05-01T12:00:00Z" and made.event["detail"] == {"a": 1}
    assert made.event["resources"] == [] and made.event["version"] == "0"
    missing = entry_event({"Source": "s", "Detail": "{}"}, 0.0)
    assert missing == EntryError("InvalidArgument",
                                 "Parameter DetailType is not valid. Reason: DetailType is a required argument.")
    assert entry_event({"Source": "s", "DetailType": "d", "Detail": "3"}, 0.0) == EntryError(
        "MalformedDetail", "Detail is malformed.")
    assert isinstance(entry_event({"Source": "s", "DetailType": "d", "Detail": "{}", "Time": "soon"}, 0.0), EntryError)
    assert results([made, missing]) == {"FailedEntryCount": 1, "Entries": [{"EventId": made.event["id"]},
                                                                          missing.result()]}


def test_rule_arns_name_the_bus_unless_it_is_the_default():
    assert rule_arn("default", "r").endswith(":rule/r")
    assert rule_arn("orders", "r").endswith(":rule/orders/r")
