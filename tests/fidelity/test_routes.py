"""Route selection end to end, as API Gateway HTTP APIs select routes: the most specific
route wins whatever the declaration order (exact paths, then parameters, then greedy
`{proxy+}`, the longest greedy prefix first), a method's own route beats `ANY` on the same
path, `$default` takes what nothing else matches, and `/{proxy+}` needs a segment.

The catch-all of the first node is an unmodified Powertools `APIGatewayHttpResolver` app,
declared first, as every resolver app declares it.
"""

from __future__ import annotations

import pytest

from tests.support import NodeProcess, write_app

RESOLVER = """
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

    app = APIGatewayHttpResolver()


    def seen(**extra):
        event = app.current_event
        return {"via": "powertools", "routeKey": event.route_key, "path": event.path, **extra}


    @app.get("/")
    def root():
        return seen()


    @app.get("/todos/<todo_id>")
    def todo(todo_id):
        return seen(todo=todo_id)


    def handler(event, context):
        return app.resolve(event, context)
"""

APP = """
    from squall import App

    app = App("routes")
    app.http("ANY", "/{proxy+}", handler="resolver.handler")   # first, as resolver apps declare it


    def answer(fn):
        def handler(event, ctx):
            return {"fn": fn, "routeKey": event["routeKey"], "pathParameters": event.get("pathParameters")}
        handler.__name__ = fn
        return handler


    app.http("GET", "/health", answer("health"))
    app.http("GET", "/items/{id}", answer("item"))
    app.http("GET", "/items/special", answer("special"))
    app.http("ANY", "/things", answer("any_things"))
    app.http("GET", "/things", answer("get_things"))
    app.http("GET", "/pets/{proxy+}", answer("pets"))
    app.http("ANY", "$default", handler="resolver.handler")
"""

STRICT_APP = """
    from squall import App

    app = App("strict")


    @app.http("GET", "/{proxy+}")
    @app.http("GET", "/health")
    def echo(event, ctx):
        return {"routeKey": event["routeKey"]}
"""


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    directory = tmp_path_factory.mktemp("routes")
    write_app(directory, RESOLVER, "resolver.py")
    with NodeProcess(write_app(directory, APP), backend=f"sqlite:///{directory}/state.db") as node, \
            node.client(timeout=10) as c:
        yield c


@pytest.mark.parametrize(("method", "path", "fn", "route_key", "params"), [
    # exact beats the greedy route declared first, and a parameter declared first
    ("GET", "/health", "health", "GET /health", None),
    ("GET", "/items/42", "item", "GET /items/{id}", {"id": "42"}),
    ("GET", "/items/special", "special", "GET /items/special", None),
    # a method's own route beats ANY declared first on the same path
    ("GET", "/things", "get_things", "GET /things", None),
    ("POST", "/things", "any_things", "ANY /things", None),
    # the longest greedy prefix beats /{proxy+}
    ("GET", "/pets/cat/1", "pets", "GET /pets/{proxy+}", {"proxy": "cat/1"}),
])
def test_the_most_specific_route_wins_whatever_the_declaration_order(client, method, path, fn, route_key, params):
    response = client.request(method, path)
    assert response.status_code == 200, response.text
    assert response.json() == {"fn": fn, "routeKey": route_key, "pathParameters": params}


def test_what_only_the_greedy_route_matches_reaches_the_powertools_resolver(client):
    response = client.get("/todos/7")
    assert response.status_code == 200, response.text
    assert response.json() == {"via": "powertools", "routeKey": "ANY /{proxy+}", "path": "/todos/7", "todo": "7"}
    # a path declared for GET only: another method goes on to the greedy ANY route (the
    # resolver's own 404 body), not a 405 from the gateway
    response = client.post("/health")
    assert response.status_code == 404
    assert response.json() == {"statusCode": 404, "message": "Not found"}


def test_the_root_is_not_matched_by_the_greedy_route_and_goes_to_default(client):
    response = client.get("/")
    assert response.status_code == 200, response.text
    assert response.json() == {"via": "powertools", "routeKey": "$default", "path": "/"}


@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    directory = tmp_path_factory.mktemp("strict")
    with NodeProcess(write_app(directory, STRICT_APP), backend=f"sqlite:///{directory}/state.db") as node, \
            node.client(timeout=10) as c:
        yield c


def test_without_default_unmatched_requests_keep_their_404_and_405(strict):
    assert strict.get("/health").json() == {"routeKey": "GET /health"}
    assert strict.get("/a/b").json() == {"routeKey": "GET /{proxy+}"}
    root = strict.get("/")
    assert root.status_code == 404
    assert root.json()["error"] == "RouteNotFound"
    wrong = strict.post("/health")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET, HEAD"
