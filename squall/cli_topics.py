"""`squall publish` and `squall topics`: SNS's Publish and a view of every topic's
subscriptions, on the backend the nodes share (the topics their apps declared)."""

from __future__ import annotations

import sys

import click

from squall.cli import _table, backend_option, backend_url, main, utf8


def _attributes(items: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """`NAME=VALUE` (a String) or `NAME:TYPE=VALUE` (TYPE String, String.Array, Number or
    Binary, base64): attribute names hold no ':', so the form is unambiguous."""
    attributes = {}
    for item in items:
        key, sep, value = utf8("an attribute", item).partition("=")
        name, _, data_type = key.partition(":")
        if not sep or not name:
            raise click.ClickException(f"attribute {item!r} must look like NAME=VALUE or NAME:TYPE=VALUE")
        data_type = data_type or "String"
        field = "BinaryValue" if data_type == "Binary" else "StringValue"
        attributes[name] = {"DataType": data_type, field: value}
    return attributes


@main.command()
@click.argument("topic")
@click.argument("message")
@click.option("--attribute", "-a", multiple=True, metavar="NAME[:TYPE]=VALUE",
              help="A message attribute (repeatable); TYPE is String (default), String.Array, Number or Binary.")
@click.option("--subject", default=None, help="The message's subject.")
@click.option("--group-id", default=None, help="Message group id (FIFO topics).")
@click.option("--dedup-id", default=None,
              help="Deduplication id (FIFO topics; by default the message's SHA-256 with content-based deduplication).")
@backend_option
def publish(topic: str, message: str, attribute: tuple[str, ...], subject: str | None, group_id: str | None,
            dedup_id: str | None, backend: str | None) -> None:
    """Publish MESSAGE ('-' reads it from stdin) to TOPIC; prints the message id (and, on a
    FIFO topic, the sequence number on a second line)."""
    from squall.backends import open_backend
    from squall.sources.publishing import Publisher
    from squall.sources.topics import stored_topic

    message = utf8("the message on stdin", sys.stdin.buffer.read()) if message == "-" else utf8("MESSAGE", message)
    store = open_backend(backend_url(backend))
    try:
        result = Publisher(store).publish(stored_topic(store, topic), message, _attributes(attribute), subject,
                                          group_id, dedup_id)
        click.echo(result.message_id)
        if result.sequence_number is not None:
            click.echo(result.sequence_number)
    finally:
        store.close()


@main.command()
@backend_option
def topics(backend: str | None) -> None:
    """Every topic with its subscriptions: messages published, and per subscription those
    delivered, turned away by its filter policy, pending and failed (in its DLQ)."""
    from squall.backends import open_backend
    from squall.sources.publishing import published, tallies
    from squall.sources.topics import stored_topics

    store = open_backend(backend_url(backend))
    try:
        rows = []
        for name, topic in sorted(stored_topics(store).items()):
            count = published(store, name)
            for subscription, tally in zip(topic.subscriptions, tallies(store, topic), strict=True):
                function = subscription.to_function
                rows.append((name, count, tally.endpoint, subscription.scope if subscription.policy else "-",
                             "yes" if subscription.raw else "no", tally.delivered, tally.filtered,
                             tally.pending if function else "-", tally.failed if function else "-"))
    finally:
        store.close()
    _table(["TOPIC", "PUBLISHED", "SUBSCRIPTION", "FILTER", "RAW", "DELIVERED", "FILTERED", "PENDING", "FAILED"],
           rows)
