"""What a handler returns, as Lambda's runtime encodes it, on a real node: a DynamoDB item
as boto3 reads it (its numbers Decimals) comes back as numbers, through HTTP and
`squall invoke`; an exception without a message logs as the runtime logs it."""

from __future__ import annotations

import json

import pytest

from tests.support import NodeProcess, squall, write_app

APP = """
    from decimal import Decimal

    from squall import App

    app = App("results")
    # what table.get_item(...)["Item"] gives with boto3's resource API
    ITEM = {"id": "o1", "total": Decimal("9.50"), "quantity": Decimal("2"), "views": Decimal("12345678901234567890")}


    @app.http("GET", "/item")
    def item(event, ctx):
        return ITEM


    @app.function()
    def raw(event, ctx):
        return ITEM


    @app.function()
    def silent(event, ctx):
        raise ValueError()
"""


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    directory = tmp_path_factory.mktemp("results")
    with NodeProcess(write_app(directory, APP)) as running:
        running.directory = directory
        yield running


def test_a_dynamodb_item_comes_back_as_numbers_over_http(node):
    with node.client() as client:
        response = client.get("/item")
    assert response.status_code == 200
    assert response.json() == {"id": "o1", "total": 9.5, "quantity": 2, "views": 12345678901234567890}


def test_squall_invoke_prints_the_item_as_numbers(node):
    result = squall("invoke", str(node.app_path), "raw", cwd=node.directory)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"id": "o1", "total": 9.5, "quantity": 2, "views": 12345678901234567890}


def test_an_exception_without_a_message_is_reported_as_the_runtime_does(node):
    result = squall("invoke", str(node.app_path), "silent", cwd=node.directory)
    assert result.returncode == 1
    error = json.loads(result.stdout)
    assert (error["errorType"], error["errorMessage"]) == ("ValueError", "")
    assert "[ERROR] ValueError\nTraceback (most recent call last):\n" in result.stderr
