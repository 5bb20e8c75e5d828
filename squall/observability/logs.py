"""The function log, cluster-wide: every line a function writes, kept in the backend.

Instances ship their output to the node over their channels (squall.runtime.output); the
runtime hands each piece to the node's `LogSink` as it arrives, tagged with its function,
request id and trace id. The sink prints it on the node's output (the terminal of
`squall dev`, the journal of `squall run`) PRINT_DELAY after it arrives, in one write for
everything that arrived meanwhile (a write per invocation in the event loop cost a tenth
of the node's HTTP throughput), and it appends it to the `squall.logs` stream every
FLUSH_INTERVAL, one record per node. The log costs the node a list append per invocation.
`squall logs` reads the stream from any machine, as `sam logs` reads CloudWatch; retention
trims it (24 hours by default).

A log storm cannot take the node down, nor push other functions' lines out: each function
may write RATE bytes a second (bursts up to BURST); past that its text is dropped, counted
in `dropped`, and the gap is marked in its log once per flush. Nothing blocks: an instance
that writes faster than the node reads waits on its own socket.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TextIO

import orjson

from squall.backends.protocol import Streams
from squall.core.lifecycle import PeriodicService, Progress

LOGS_STREAM = "squall.logs"
#: seconds between the sink's writes to the backend (`squall logs --follow` shows a line
#: within about this), and from a line's arrival to its print on the node's output
FLUSH_INTERVAL = 0.25
PRINT_DELAY = 0.05
#: bytes per second a function may log on a node, and the burst above it
RATE = 1024 * 1024
BURST = 8 * RATE


@dataclass(slots=True)
class LogChunk:
    """A piece of one function's output: whole lines, each ending in a newline (unless an
    instance was cut off mid-line). `request_id` is empty for what was written outside an
    invocation (at init, by a thread between two); `trace_id` is the W3C trace id, or empty."""

    time: float
    function: str
    request_id: str
    trace_id: str
    text: str


LogListener = Callable[[LogChunk], object]


class _Allowance:
    """A token bucket of bytes."""

    __slots__ = ("tokens", "updated", "dropped")

    def __init__(self, now: float):
        self.tokens = float(BURST)
        self.updated = now
        self.dropped = 0


class LogSink(PeriodicService):
    """Takes function output from the runtime, prints it and stores it, in batches."""

    name = "function-log"

    def __init__(self, backend: Streams, node_id: str, output: TextIO | None, store: bool = True,
                 listeners: Iterable[LogListener] = (), interval: float = FLUSH_INTERVAL):
        """`output`: where lines are printed (None: nowhere); `store`: kept in the backend
        for `squall logs` (off with observability); `listeners` see every chunk (custom
        metrics read their EMF lines there)."""
        super().__init__()
        self.backend = backend
        self.node_id = node_id
        self.output = output
        self.store = store
        self.listeners = list(listeners)
        self.interval = interval
        self.dropped: Counter[str] = Counter()  # bytes dropped, by function
        self._chunks: list[LogChunk] = []
        self._unprinted: list[str] = []
        self._allowances: dict[str, _Allowance] = {}

    def write(self, function: str, request_id: str, trace_id: str, text: str) -> None:
        """One piece of output (the runtime calls this as it arrives: keep it cheap)."""
        now = time.time()
        allowance = self._allowances.get(function)
        if allowance is None:
            allowance = self._allowances[function] = _Allowance(now)
        size = len(text)
        tokens = min(BURST, allowance.tokens + (now - allowance.updated) * RATE)
        allowance.updated = now
        if size > tokens:
            allowance.tokens = tokens
            allowance.dropped += size
            return
        allowance.tokens = tokens - size
        self._chunks.append(LogChunk(now, function, request_id, trace_id, text))
        if self.output is not None:
            if not self._unprinted:
                asyncio.get_running_loop().call_later(PRINT_DELAY, self._print)
            self._unprinted.append(text)

    def _print(self) -> None:
        if self.output is None or not self._unprinted:
            return  # printed already, by settle()
        text, self._unprinted = "".join(self._unprinted), []
        self.output.write(text)
        self.output.flush()

    async def step(self) -> Progress:
        chunks = self._take()
        if chunks:
            await asyncio.to_thread(self._flush, chunks)
        return Progress(succeeded=len(chunks))

    async def settle(self) -> None:
        self._print()
        chunks = self._take()
        if chunks:
            await asyncio.to_thread(self._flush, chunks)

    def _take(self) -> list[LogChunk]:
        chunks, self._chunks = self._chunks, []
        now = time.time()
        for function, allowance in self._allowances.items():
            if allowance.dropped:
                self.dropped[function] += allowance.dropped
                chunk = LogChunk(now, function, "", "", f"[squall] {allowance.dropped} bytes of {function}'s "
                                                        f"output dropped: over the log rate of {RATE} bytes/s\n")
                chunks.append(chunk)
                if self.output is not None:
                    self.output.write(chunk.text)
                allowance.dropped = 0
        return chunks

    def _flush(self, chunks: list[LogChunk]) -> None:
        if self.store:
            self.backend.stream_append(LOGS_STREAM, self.node_id, orjson.dumps(
                [(c.time, c.function, c.request_id, c.trace_id, c.text) for c in chunks]).decode())
        for listener in self.listeners:
            for chunk in chunks:
                listener(chunk)


# ---- reading ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class LogLine:
    """One stored line, as `squall logs` shows it. `level` is the line's own (`[ERROR]` in
    Lambda's text format, `"level"` in its JSON format), or that of the record it
    continues (see `lines_of`); empty if none."""

    time: float
    function: str
    request_id: str
    trace_id: str
    level: str
    text: str


#: the levels, least severe first, as Lambda's formats name them (and Python's WARNING)
LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
_ALIASES = {"WARNING": "WARN", "CRITICAL": "FATAL"}
_TEXT_LEVEL = re.compile(r"\[(TRACE|DEBUG|INFO|WARN|WARNING|ERROR|FATAL|CRITICAL)\]\t")
_JSON_LEVEL = re.compile(r'"level"\s*:\s*"([A-Z]+)"')


def level_of(line: str) -> str:
    """The level a line states, in Lambda's text or JSON format ('' if none)."""
    found = _TEXT_LEVEL.match(line) or (_JSON_LEVEL.search(line) if line.startswith("{") else None)
    if found is None:
        return ""
    return _ALIASES.get(found.group(1), found.group(1))


def lines_of(chunk: LogChunk) -> Iterator[LogLine]:
    """A chunk's lines, each with its level: its own, or that of the record it continues
    (an indented line, a traceback up to its exception line); a line of neither kind (a
    print, a platform line) has none."""
    level, in_traceback = "", False
    for text in chunk.text.splitlines():
        own = level_of(text)
        if own:
            level, in_traceback = own, False
        elif text.startswith(_TRACEBACK_STARTS):
            in_traceback = True
        elif text[:1].isspace():
            pass
        elif in_traceback:  # the exception's own line ends the traceback, and the record
            yield LogLine(chunk.time, chunk.function, chunk.request_id, chunk.trace_id, level, text)
            level, in_traceback = "", False
            continue
        else:
            level = ""
        yield LogLine(chunk.time, chunk.function, chunk.request_id, chunk.trace_id, level, text)


_TRACEBACK_STARTS = ("Traceback (most recent call last):", "During handling of the above exception",
                     "The above exception was the direct cause")


@dataclass(frozen=True)
class LogQuery:
    """What `squall logs` selects: each field None matches everything."""

    function: str | None = None
    since: float | None = None
    request_id: str | None = None
    trace_id: str | None = None
    level: str | None = None
    grep: str | None = None

    def matches(self, line: LogLine) -> bool:
        if self.since is not None and line.time < self.since:
            return False
        if self.function is not None and line.function != self.function:
            return False
        if self.request_id is not None and line.request_id != self.request_id:
            return False
        if self.trace_id is not None and line.trace_id != self.trace_id:
            return False
        if self.level is not None and (not line.level or LEVELS.index(line.level) < LEVELS.index(self.level)):
            return False
        return self.grep is None or self.grep in line.text


class LogReader:
    """Reads the stored log of every node, resuming where it stopped (`--follow`)."""

    def __init__(self, backend: Streams, query: LogQuery):
        self.backend = backend
        self.query = query
        self._after: dict[int, int] = {}

    def read(self, batch: int = 500) -> list[LogLine]:
        """The lines stored since the last read, oldest first across nodes."""
        found: list[LogLine] = []
        since = self.query.since
        for shard in range(self.backend.stream_shards(LOGS_STREAM)):
            while True:
                records = self.backend.stream_read(LOGS_STREAM, shard, self._after.get(shard, 0), batch)
                if not records:
                    break
                self._after[shard] = records[-1].seq
                for record in records:
                    if since is not None and record.timestamp < since:
                        continue  # appended before `since`: every chunk in it is older
                    for entry in json.loads(record.data):
                        found.extend(line for line in lines_of(LogChunk(*entry)) if self.query.matches(line))
                if len(records) < batch:
                    break
        found.sort(key=lambda line: line.time)
        return found
