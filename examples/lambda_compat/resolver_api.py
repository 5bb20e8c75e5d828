"""A Powertools REST API for an HTTP API (payload format 2.0), as deployed to Lambda."""

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.exceptions import BadRequestError, NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
tracer = Tracer()  # X-Ray: the trace header Squall sets is unsampled, so nothing is sent
app = APIGatewayHttpResolver(strip_prefixes=["/api"])

USERS = {"ada": {"id": "ada", "name": "Ada Lovelace"}, "alan": {"id": "alan", "name": "Alan Turing"}}


@app.get("/users")
def list_users():
    return {"users": sorted(USERS)}


@app.get("/users/<user_id>")
@tracer.capture_method
def get_user(user_id: str):
    user = USERS.get(user_id)
    if user is None:
        raise NotFoundError(f"user {user_id!r} not found")
    logger.info("user found", extra={"user_id": user_id})
    return user


@app.get("/users/<user_id>/greeting")
def greet(user_id: str):
    name = USERS.get(user_id, {}).get("name", user_id)
    language = app.current_event.get_query_string_value("lang", default_value="en")
    return {"greeting": {"en": "Hello", "fr": "Bonjour"}.get(language, "Hello") + f", {name}!"}


@app.post("/echo")
def echo():
    body = app.current_event.json_body
    if not isinstance(body, dict):
        raise BadRequestError("expected a JSON object")
    return {"echo": body, "source_ip": app.current_event.request_context.http.source_ip}


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
