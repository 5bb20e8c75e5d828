"""The first named atomic cross-primitive operation: a table write and its change record.

`table_put` / `table_delete` with `feed=True` change an item (tables) and append one record
describing the change (streams) in one commit: a reader of the feed never misses a change
that happened, nor sees one that did not. The record goes to the stream
`change_stream(table)` (created with one shard on first use, or as the caller created it),
with the item's key as partition key, so the changes of one key are read in order.

Implemented once per backend as one transaction (`sqlite/tables.py`, through the streams
module's in-transaction append) and one script (`redis/lua/table_write.lua`, which includes
the stream library). See `squall.backends.protocol` for how further such operations are added.
"""

from __future__ import annotations

import json

from squall.backends.protocol import Item


def change_stream(table: str) -> str:
    """The stream a table's change feed is written to."""
    return f"table-changes.{table}"


def change_record(old: Item | None, new: Item | None, at: float) -> str:
    """The JSON data of the change from `old` to `new` (None: no item), in the DynamoDB
    Streams vocabulary: eventName INSERT, MODIFY or REMOVE; images are the item values."""
    item = new or old
    if item is None:
        raise ValueError("a change record needs an old or a new item")
    return json.dumps({
        "eventName": "REMOVE" if new is None else "MODIFY" if old else "INSERT",
        "key": item.key,
        "oldImage": old.value if old else None,
        "newImage": new.value if new else None,
        "version": item.version,
        "timestamp": at,
    }, separators=(",", ":"))
