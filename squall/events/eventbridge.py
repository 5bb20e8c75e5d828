"""EventBridge's shapes: a PutEvents entry checked and made into the event a rule's target
receives (the envelope), the per-entry results PutEvents returns, and the ARNs events name.

Pure functions: `ctx.put_events`, `squall put-events` and the harness share them, so the
limits and error codes are the same wherever events are put.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from squall.aws import ACCOUNT, REGION, arn, request_id
from squall.errors import ConfigError

#: PutEvents' limits: 10 entries and 256 KB per request
MAX_ENTRIES = 10
MAX_REQUEST_BYTES = 256 * 1024
#: what an entry's Time counts for in the request's size, whatever its form (AWS's rule)
TIME_BYTES = 14
DEFAULT_BUS = "default"
#: the field EventBridge adds to an event it replays from an archive
REPLAY_NAME = "replay-name"


@dataclass(frozen=True)
class EntryError:
    """Why one entry was not put, with PutEvents' code and message."""

    code: str
    message: str

    def result(self) -> dict[str, str]:
        return {"ErrorCode": self.code, "ErrorMessage": self.message}


@dataclass(frozen=True)
class Entry:
    """A checked PutEvents entry: the event it becomes, and the bus it goes to."""

    bus: str
    event: dict[str, Any]


def bus_arn(bus: str) -> str:
    return arn("events", f"event-bus/{bus}")


def rule_arn(bus: str, rule: str) -> str:
    """A rule of the default bus is `rule/NAME`, of another bus `rule/BUS/NAME`, as on AWS."""
    return arn("events", f"rule/{rule}" if bus == DEFAULT_BUS else f"rule/{bus}/{rule}")


def archive_arn(archive: str) -> str:
    return arn("events", f"archive/{archive}")


def event_time(seconds: float) -> str:
    """The envelope's `time`: UTC to the second, as EventBridge writes it."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def request_size(entries: Sequence[Mapping[str, Any]]) -> int:
    """The size PutEvents counts against its limit: Time as 14 bytes, and the UTF-8 bytes of
    Source, DetailType, Detail and each of Resources."""
    size = 0
    for entry in entries:
        size += TIME_BYTES if entry.get("Time") is not None else 0
        for name in ("Source", "DetailType", "Detail"):
            value = entry.get(name)
            size += len(value.encode()) if isinstance(value, str) else 0
        resources = entry.get("Resources")
        if isinstance(resources, list):
            size += sum(len(r.encode()) for r in resources if isinstance(r, str))
    return size


def check_request(entries: Any) -> list[Mapping[str, Any]]:
    """The request as PutEvents validates it before any entry: ConfigError (a
    ValidationException on AWS) for a request that is not 1 to 10 entries within 256 KB."""
    if not isinstance(entries, Sequence) or isinstance(entries, (str, bytes)) or not all(
            isinstance(entry, Mapping) for entry in entries):
        raise ConfigError(f"put_events takes a list of entries (objects with Source, DetailType, Detail, ...), "
                          f"not {entries!r}")
    if not 1 <= len(entries) <= MAX_ENTRIES:
        raise ConfigError(f"1 validation error detected: Value at 'entries' failed to satisfy constraint: Member "
                          f"must have length between 1 and {MAX_ENTRIES} (got {len(entries)})")
    size = request_size(entries)
    if size > MAX_REQUEST_BYTES:
        raise ConfigError(f"Total size of the entries in the request is over the limit ({size} bytes; the limit is "
                          f"{MAX_REQUEST_BYTES})")
    return list(entries)


def entry_event(entry: Mapping[str, Any], now: float) -> Entry | EntryError:
    """The event an entry becomes, or why PutEvents refuses the entry (its other entries
    are put all the same)."""
    for name in ("Source", "DetailType", "Detail"):
        if not isinstance(entry.get(name), str) or not entry[name]:
            return EntryError("InvalidArgument", f"Parameter {name} is not valid. Reason: {name} is a required "
                                                 f"argument.")
    if entry["Source"].startswith("aws."):
        return EntryError("NotAuthorizedForSourceException", "Not authorized for the source.")
    try:
        detail = json.loads(entry["Detail"])
    except ValueError:
        detail = None
    if not isinstance(detail, dict):
        return EntryError("MalformedDetail", "Detail is malformed.")
    resources = entry.get("Resources", [])
    if not isinstance(resources, list) or not all(isinstance(r, str) for r in resources):
        return EntryError("InvalidArgument", "Parameter Resources is not valid. Reason: Resources must be a list of "
                                             "strings.")
    when = _time(entry.get("Time"), now)
    if when is None:
        return EntryError("InvalidArgument", f"Parameter Time is not valid. Reason: {entry.get('Time')!r} is not a "
                                             f"timestamp.")
    bus = entry.get("EventBusName") or DEFAULT_BUS
    if not isinstance(bus, str):
        return EntryError("InvalidArgument", "Parameter EventBusName is not valid.")
    bus = bus.rsplit("/", 1)[-1] if bus.startswith("arn:") else bus
    return Entry(bus, {"version": "0", "id": request_id(), "detail-type": entry["DetailType"],
                       "source": entry["Source"], "account": ACCOUNT, "time": event_time(when), "region": REGION,
                       "resources": list(resources), "detail": detail})


def _time(value: Any, now: float) -> float | None:
    """An entry's Time (a datetime, epoch seconds or an ISO 8601 string, as the AWS CLI and
    SDKs take it); `now` without one."""
    if value is None:
        return now
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    return None


def results(outcomes: Sequence[Entry | EntryError]) -> dict[str, Any]:
    """PutEvents' response: one result per entry, in order, and how many failed."""
    entries = [o.result() if isinstance(o, EntryError) else {"EventId": o.event["id"]} for o in outcomes]
    return {"FailedEntryCount": sum(isinstance(o, EntryError) for o in outcomes), "Entries": entries}
