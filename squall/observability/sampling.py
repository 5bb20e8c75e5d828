"""Head sampling as OpenTelemetry's standard variables configure it.

`OTEL_TRACES_SAMPLER` (default `parentbased_always_on`) and `OTEL_TRACES_SAMPLER_ARG` (the
ratio of the `traceidratio` samplers, default 1.0) decide, where a trace starts, whether it
is recorded: the decision travels in the `traceparent` flags to every later hop, instance
and node. The ratio is the SDK's rule (the trace id's low 64 bits below ratio * 2**64), so
Squall and an SDK elsewhere in the trace agree on the same id. The decision is made per
invocation on the node's event loop, so it is two comparisons, not an SDK sampler call.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from squall.errors import ConfigError
from squall.observability.context import SpanContext

SAMPLERS = ("always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off",
            "parentbased_traceidratio")
_LOW_64 = (1 << 64) - 1


@dataclass(frozen=True)
class Sampler:
    #: whether a span with a parent follows the parent's decision
    parent_based: bool = True
    #: the share of new traces recorded (0 to 1)
    ratio: float = 1.0

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Sampler:
        """The sampler `OTEL_TRACES_SAMPLER[_ARG]` name; ConfigError naming a bad value."""
        env = os.environ if environ is None else environ
        name = env.get("OTEL_TRACES_SAMPLER", "").strip().lower() or "parentbased_always_on"
        if name not in SAMPLERS:
            raise ConfigError(f"unsupported OTEL_TRACES_SAMPLER {name!r}: expected one of {', '.join(SAMPLERS)}")
        base = name.removeprefix("parentbased_")
        ratio = 1.0 if base == "always_on" else 0.0 if base == "always_off" else _ratio(env)
        return cls(parent_based=name.startswith("parentbased_"), ratio=ratio)

    def sampled(self, trace_id: str, parent: SpanContext | None) -> bool:
        """Whether a span of `trace_id` is recorded, given its parent's context (if any)."""
        if parent is not None and self.parent_based:
            return parent.sampled
        if self.ratio >= 1.0:
            return True
        return int(trace_id, 16) & _LOW_64 < round(self.ratio * (_LOW_64 + 1))


def _ratio(env: Mapping[str, str]) -> float:
    text = env.get("OTEL_TRACES_SAMPLER_ARG", "").strip() or "1.0"
    try:
        ratio = float(text)
    except ValueError:
        ratio = -1.0
    if not 0.0 <= ratio <= 1.0:
        raise ConfigError(f"invalid OTEL_TRACES_SAMPLER_ARG {text!r}: expected a ratio from 0 to 1")
    return ratio
