"""`specificity` orders paths as API Gateway HTTP APIs prefer them; `$default` is ANY only."""

from __future__ import annotations

import pytest

from squall.errors import ConfigError
from squall.sources.http import HttpRoute, specificity


def test_exact_before_parameters_before_greedy_with_the_longest_greedy_prefix_first():
    paths = ["/{proxy+}", "/pets/{proxy+}", "/pets/{kind}/{id}", "/pets/dog/{id}", "/pets/dog/1"]
    assert sorted(paths, key=specificity) == list(reversed(paths))


def test_the_default_route_takes_every_method_and_a_greedy_parameter_ends_the_path():
    assert HttpRoute(method="any", path="$default").route_key == "$default"
    with pytest.raises(ConfigError, match="declare it as ANY"):
        HttpRoute(method="GET", path="$default")
    with pytest.raises(ConfigError, match="must be the last segment"):
        HttpRoute(method="GET", path="/{proxy+}/tail")
