"""What a node records about its invocations beyond metering, and for how long."""

from __future__ import annotations

from dataclasses import dataclass

HOUR = 3600.0
DAY = 24 * HOUR


@dataclass
class ObservabilitySettings:
    """`enabled` turns traces, metrics and the stored function log on (the default) or off
    (metering stays: it is what invocations are billed from); the benchmarks compare both.
    Each kind of record is kept in the backend for a bounded window."""

    enabled: bool = True
    #: seconds function log lines are kept (`squall logs`)
    log_retention: float = DAY
    #: seconds spans are kept (`squall traces`), and the most kept
    trace_retention: float = HOUR
    trace_max_spans: int = 100_000
