"""Custom metrics the Lambda way: CloudWatch Embedded Metric Format lines in a function's output.

A function that prints EMF documents (Powertools' `@metrics.log_metrics` does, one JSON
line per flush) gets those metrics without a code change: the node's log sink hands every
chunk of function output to `EmfMetrics`, which parses each EMF line per the specification
(`_aws.Timestamp`, `_aws.CloudWatchMetrics[].Namespace / Dimensions / Metrics[{Name, Unit,
StorageResolution}]`, values and dimension values read from the document's root members),
and

- exposes each metric as a Prometheus summary (`_sum` and `_count`, CloudWatch's Sum and
  SampleCount statistics), named `<namespace>_<metric>[_<unit>]` in snake case with the
  unit turned into a base unit where that is unambiguous (`prometheus_name`), its
  dimensions as labels: each dimension set of a directive is a series of its own, as it is
  a metric of its own in CloudWatch;
- appends every datapoint to the `squall.metrics` stream, once a second per node (as the
  Meter does), where `read_custom_metrics` finds them for `squall metrics`.

A line that is not a JSON object with an `_aws` member is plain output and ignored; an
EMF document that breaks the specification is ignored whole and counted in
`squall_emf_rejected_total{reason="invalid"}`, as CloudWatch counts EMFValidationErrors.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeGuard

import orjson
from prometheus_client.metrics_core import Metric

from squall.backends import Backend
from squall.backends.protocol import Streams
from squall.observability.batching import StreamBatch
from squall.observability.logs import LogChunk

METRICS_STREAM = "squall.metrics"
#: the specification's limits
MAX_DIRECTIVE_METRICS = 100
MAX_DIMENSIONS = 30
MAX_VALUES = 100
UNITS = frozenset({
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes",
    "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second",
    "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second", "Bits/Second",
    "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None",
})
#: units Prometheus has a base unit for: name suffix and factor to it
_BASE_UNITS = {"Seconds": ("seconds", 1.0), "Milliseconds": ("seconds", 1e-3), "Microseconds": ("seconds", 1e-6),
               "Bytes": ("bytes", 1.0), "Bytes/Second": ("bytes_per_second", 1.0), "Percent": ("ratio", 0.01),
               "Count": ("", 1.0), "None": ("", 1.0), "Count/Second": ("per_second", 1.0)}
RESERVED_PREFIXES = ("squall_", "process_")
#: the most series one node exposes, and the most datapoints it buffers between flushes
MAX_SERIES = 10_000
MAX_BUFFERED = 50_000



class InvalidEmf(ValueError):
    """An EMF document that breaks the specification (the message says where)."""


class Rejection(StrEnum):
    INVALID = "invalid"
    #: a new series past MAX_SERIES (its datapoints are still stored)
    TOO_MANY_SERIES = "too_many_series"
    #: a datapoint past MAX_BUFFERED within one flush interval (not stored)
    BUFFER_FULL = "buffer_full"


@dataclass(frozen=True, slots=True)
class Datapoint:
    """One metric's values in one EMF document, under one dimension set."""

    #: seconds since the epoch (the document's `_aws.Timestamp`)
    time: float
    namespace: str
    name: str
    #: a CloudWatch unit name; "None" when the document gives none
    unit: str
    #: 1 (high resolution) or 60 seconds
    storage_resolution: int
    dimensions: tuple[tuple[str, str], ...]
    values: tuple[float, ...]
    function: str = ""
    request_id: str = ""
    trace_id: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"t": self.time, "ns": self.namespace, "n": self.name, "u": self.unit, "r": self.storage_resolution,
                "d": [list(pair) for pair in self.dimensions], "v": list(self.values), "f": self.function,
                "req": self.request_id, "tr": self.trace_id}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Datapoint:
        return cls(data["t"], data["ns"], data["n"], data["u"], data["r"],
                   tuple((name, value) for name, value in data["d"]), tuple(data["v"]), data["f"], data["req"],
                   data["tr"])


def parse_emf(document: Any, *, function: str = "", request_id: str = "", trace_id: str = "") -> list[Datapoint]:
    """The datapoints of one EMF document (a parsed JSON object with an `_aws` member).
    InvalidEmf if it breaks the specification: nothing of it is taken then."""
    meta = document.get("_aws") if isinstance(document, dict) else None
    if not isinstance(meta, dict):
        raise InvalidEmf("_aws is not an object")
    timestamp, directives = meta.get("Timestamp"), meta.get("CloudWatchMetrics")
    if not _is_number(timestamp) or timestamp < 0:
        raise InvalidEmf("_aws.Timestamp is not a number of milliseconds")
    if not isinstance(directives, list):
        raise InvalidEmf("_aws.CloudWatchMetrics is not an array")
    out: list[Datapoint] = []
    for directive in directives:
        if not isinstance(directive, dict):
            raise InvalidEmf("a MetricDirective is not an object")
        namespace, dimension_sets, metrics = (directive.get(key) for key in ("Namespace", "Dimensions", "Metrics"))
        if not isinstance(namespace, str) or not 1 <= len(namespace) <= 1024:
            raise InvalidEmf("Namespace is not a string of 1 to 1024 characters")
        if not isinstance(dimension_sets, list) or not all(map(_is_dimension_set, dimension_sets)):
            raise InvalidEmf("Dimensions is not an array of arrays of at most 30 strings")
        if not isinstance(metrics, list) or len(metrics) > MAX_DIRECTIVE_METRICS:
            raise InvalidEmf("Metrics is not an array of at most 100 MetricDefinitions")
        sets = [tuple((name, _dimension_value(document, name)) for name in names) for names in dimension_sets]
        for definition in metrics:
            name, unit, resolution, values = _metric(document, definition)
            for dimensions in sets:
                out.append(Datapoint(timestamp / 1000, namespace, name, unit, resolution, dimensions, values,
                                     function, request_id, trace_id))
    return out


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_dimension_set(value: Any) -> bool:
    return isinstance(value, list) and len(value) <= MAX_DIMENSIONS and all(isinstance(n, str) for n in value)


def _dimension_value(document: dict[str, Any], name: str) -> str:
    value = document.get(name)
    if not isinstance(value, str) or not 1 <= len(value) <= 1024:
        raise InvalidEmf(f"dimension {name!r} has no string value in the document")
    return value


def _metric(document: dict[str, Any], definition: Any) -> tuple[str, str, int, tuple[float, ...]]:
    if not isinstance(definition, dict) or not isinstance(name := definition.get("Name"), str) or not name:
        raise InvalidEmf("a MetricDefinition has no Name")
    unit = definition.get("Unit", "None")
    if unit not in UNITS:
        raise InvalidEmf(f"metric {name!r} has an unknown Unit {unit!r}")
    resolution = definition.get("StorageResolution", 60)
    if resolution not in (1, 60) or isinstance(resolution, bool):
        raise InvalidEmf(f"metric {name!r} has a StorageResolution other than 1 or 60")
    value = document.get(name)
    values: list[Any] = value if isinstance(value, list) else [value]
    if not 1 <= len(values) <= MAX_VALUES or not all(map(_is_number, values)):
        raise InvalidEmf(f"metric {name!r} has no number or array of at most 100 numbers")
    return name, unit, resolution, tuple(float(v) for v in values)


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_INVALID = re.compile(r"[^a-z0-9_]+")


def snake(text: str) -> str:
    """`ServerlessAirline/Bookings-v2` -> `serverless_airline_bookings_v2`: a valid
    Prometheus name part (or label name) in its conventional case."""
    name = _INVALID.sub("_", _CAMEL.sub("_", text).lower()).strip("_")
    return f"_{name}" if name[:1].isdigit() else name


def prometheus_name(namespace: str, metric: str, unit: str) -> tuple[str, float]:
    """The Prometheus name of an EMF metric and the factor its values are multiplied by:
    time in seconds, Bytes as bytes, Percent as a 0-1 ratio; units without an unambiguous
    base unit (Kilobytes, Bits...) keep their values and are named after them. A name in
    the node's own families (`squall_*`, `process_*`) is prefixed with `emf_`."""
    suffix, factor = _BASE_UNITS.get(unit) or (snake(unit.replace("/", "_per_")), 1.0)
    name = f"{snake(namespace)}_{snake(metric)}"
    if name.startswith(RESERVED_PREFIXES):  # never a family of the node's own
        name = f"emf_{name}"
    if suffix and not name.endswith(f"_{suffix}"):
        name = f"{name}_{suffix}"
    return name, factor


SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


class EmfMetrics(StreamBatch):
    """Listener of the log sink (`self(chunk)`), Prometheus collector (`collect`) and the
    service that appends the datapoints to the backend once per `interval`."""

    name = "custom-metrics"

    def __init__(self, backend: Streams, node_id: str, interval: float = 1.0):
        super().__init__(backend, node_id, METRICS_STREAM, interval)
        #: (Prometheus name, labels) -> [sum, count]
        self._series: dict[SeriesKey, list[float]] = {}
        self._help: dict[str, str] = {}
        self.rejected: dict[Rejection, int] = dict.fromkeys(Rejection, 0)

    def __call__(self, chunk: LogChunk) -> None:
        text = chunk.text
        if '"_aws"' not in text:  # nearly every chunk: one substring search
            return
        for line in text.splitlines():
            if '"_aws"' in line and line.lstrip().startswith("{"):
                self._line(line, chunk)

    def _line(self, line: str, chunk: LogChunk) -> None:
        try:
            document = orjson.loads(line)
        except orjson.JSONDecodeError:
            self.rejected[Rejection.INVALID] += 1
            return
        if not isinstance(document, dict) or "_aws" not in document:
            return  # a JSON log line that merely mentions "_aws"
        try:
            points = parse_emf(document, function=chunk.function, request_id=chunk.request_id,
                               trace_id=chunk.trace_id)
        except InvalidEmf:
            self.rejected[Rejection.INVALID] += 1
            return
        for point in points:
            self._observe(point)
            if len(self._buffer) >= MAX_BUFFERED:
                self.rejected[Rejection.BUFFER_FULL] += 1
            else:
                self._buffer.append(point.to_json())

    def _observe(self, point: Datapoint) -> None:
        name, factor = prometheus_name(point.namespace, point.name, point.unit)
        labels = tuple(dict((snake(key) or "_", value) for key, value in point.dimensions).items())
        series = self._series.get((name, labels))
        if series is None:
            if len(self._series) >= MAX_SERIES:
                self.rejected[Rejection.TOO_MANY_SERIES] += 1
                return
            series = self._series[(name, labels)] = [0.0, 0.0]
            self._help.setdefault(name, f"EMF metric {point.namespace}/{point.name} ({point.unit})")
        series[0] += sum(point.values) * factor
        series[1] += len(point.values)

    def collect(self) -> Iterable[Metric]:
        """Called from the scrape's thread: copies are taken in single C calls."""
        families: dict[str, Metric] = {}
        for (name, labels), (total, count) in [(key, value.copy()) for key, value in list(self._series.items())]:
            family = families.get(name)
            if family is None:
                family = families[name] = Metric(name, self._help.get(name, ""), "summary")
            family.add_sample(f"{name}_count", dict(labels), count)
            family.add_sample(f"{name}_sum", dict(labels), total)
        yield from families.values()
        rejected = Metric("squall_emf_rejected", "EMF documents or datapoints not taken, by reason", "counter")
        for reason, count in self.rejected.copy().items():
            rejected.add_sample("squall_emf_rejected_total", {"reason": reason.value}, count)
        yield rejected


def read_custom_metrics(backend: Backend, since: float, page: int = 1000) -> Iterator[Datapoint]:
    """Every stored datapoint of every node timed at or after `since` (seconds since the
    epoch), oldest first per node."""
    for shard in range(backend.stream_shards(METRICS_STREAM)):
        after = 0
        while records := backend.stream_read(METRICS_STREAM, shard, after, page):
            for record in records:
                if record.timestamp >= since:  # flushed before `since`: its datapoints were timed before
                    for data in orjson.loads(record.data):
                        if data["t"] >= since:
                            yield Datapoint.from_json(data)
            after = records[-1].seq
