"""Argument checks shared by declarations: names and numbers as AWS limits them."""

from __future__ import annotations

import pytest

from squall.core.checks import FUNCTION_NAME, TABLE_NAME, check_name, check_number, check_queue_name
from squall.errors import ConfigError


@pytest.mark.parametrize("name", ["f", "resize-image_2", "A" * 64])
def test_valid_function_names(name):
    assert check_name("function", name, FUNCTION_NAME) == name


@pytest.mark.parametrize("name", ["", "a b", "a.b", "é", "A" * 65, None, 3, b"f"])
def test_invalid_function_names(name):
    with pytest.raises(ConfigError, match=r"invalid function name .*: must match \^\[A-Za-z0-9_-\]\{1,64\}\$"):
        check_name("function", name, FUNCTION_NAME)


@pytest.mark.parametrize("name, valid", [
    ("orders", True), ("q" * 80, True), ("q" * 81, False), ("orders.fifo", True), ("q" * 75 + ".fifo", True),
    ("q" * 76 + ".fifo", False),  # SQS counts the suffix among the 80
    (".fifo", False), ("orders.fifo.fifo", False), ("a.b", False), ("", False), ("with space", False),
    (None, False), (7, False),
])
def test_queue_names(name, valid):
    if valid:
        assert check_queue_name(name) == name
    else:
        with pytest.raises(ConfigError, match="invalid queue name"):
            check_queue_name(name)


@pytest.mark.parametrize("name, valid", [("abc", True), ("a.b-c_d", True), ("ab", False), ("t" * 256, False)])
def test_table_names(name, valid):
    if valid:
        assert check_name("table", name, TABLE_NAME) == name
    else:
        with pytest.raises(ConfigError, match="invalid table name"):
            check_name("table", name, TABLE_NAME)


@pytest.mark.parametrize("value, integer, ok", [
    (1, False, True), (10, False, True), (0.5 + 1, False, True), (5.5, False, True),
    (1, True, True), (10, True, True), (5.0, True, False),
    (0, False, False), (0.999, False, False), (10.001, False, False), (11, True, False),
    (True, False, False), (False, True, False),  # bools are not numbers
    ("5", False, False), (None, False, False), (float("nan"), False, False), (float("inf"), False, False),
])
def test_check_number(value, integer, ok):
    if ok:
        check_number("batch size", value, 1, 10, integer=integer)
    else:
        with pytest.raises(ConfigError, match="invalid batch size"):
            check_number("batch size", value, 1, 10, integer=integer)


def test_check_number_messages_name_the_rule():
    with pytest.raises(ConfigError, match=r"^invalid batch_size 0: must be an integer from 1 to 10000$"):
        check_number("batch_size", 0, 1, 10000, integer=True)
    with pytest.raises(ConfigError, match=r"^invalid visibility -1: must be a number from 0 to 43200$"):
        check_number("visibility", -1, 0, 43200)
    with pytest.raises(ConfigError, match=r"from 0\.5 to 1\.5"):
        check_number("ratio", 2, 0.5, 1.5)
