"""Pattern matching throughput: many rules against many events, Squall's index vs moto.

EventBridge: 10, 100 and 1,000 rules with a realistic mix of operators (every rule names
a `source`, most a `detail-type`, and each one detail condition: exact values, numeric
ranges, prefixes, suffixes, anything-but, exists, cidr, equals-ignore-case, wildcards,
`$or`), matched against 10,000 generated events with `squall.routing.Rules.matching`; then
the 1,000 rules with every source given as a prefix (`1000p`: the index cannot split them
by source, the figure for rules with no exact field in common).
SNS: the same numbers of filter policies (MessageAttributes scope) against 10,000 messages.

The baseline, in the same run: moto's matchers (`moto.events.models.EventPattern` and
`moto.sns.utils.FilterPolicyMatcher`), which test each rule in turn. moto is timed on
fewer events at the larger rule counts (it tries every rule for every event), in one
pass; Squall's figure is the median of `--passes` passes over all the events (a pass
takes about a tenth of a second, short enough for a neighbour's burst on a shared machine
to halve one). Figures are events per second of wall time either way; Squall's `cpu`
column is per second of the process's CPU time in the same passes (what one core gives
when neighbours take some of the time). Targets: >= 50,000 events/s against 1,000 rules
on one core, and 1,000 rules costing at most 5x the time of 10.

    python benchmarks/patterns.py [--events 10000] [--seed 7] [--passes 5]
"""

from __future__ import annotations

import os
import sys

# Search this directory last: its scripts must not shadow standard library modules.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE] + [_HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

from _support import warn_if_busy  # noqa: E402
from moto.events.models import EventPattern  # noqa: E402
from moto.sns.utils import FilterPolicyMatcher  # noqa: E402

from squall.routing import Rules, event_pattern, filter_policy  # noqa: E402

RULE_COUNTS = (10, 100, 1000)
SOURCES = [f"com.shop.{name}" for name in ("orders", "payments", "inventory", "shipping", "users", "search",
                                           "cart", "reviews", "returns", "billing")] + \
          [f"aws.{name}" for name in ("ec2", "s3", "rds", "lambda", "ecs", "sqs", "sns", "dynamodb", "iam", "kms")]
DETAIL_TYPES = ["Created", "Updated", "Deleted", "Failed", "Completed"]
STATES = ["pending", "running", "stopped", "failed", "done", "queued"]
REGIONS = ["us-east-1", "eu-west-1", "ap-south-1", "eu-central-1"]


def bus_rule(rng: random.Random, i: int) -> dict[str, Any]:
    source = SOURCES[i % len(SOURCES)]
    rule: dict[str, Any] = {"source": [source]}
    if rng.random() < 0.7:
        rule["detail-type"] = [f"{source} {rng.choice(DETAIL_TYPES)}"]
    else:
        rule["detail-type"] = [{"prefix": f"{source} "}]
    kind = i % 10
    detail: dict[str, Any]
    if kind == 0:
        detail = {"state": rng.sample(STATES, 2)}
    elif kind == 1:
        low = rng.randrange(0, 900)
        detail = {"amount": [{"numeric": [">=", low, "<", low + rng.randrange(10, 200)]}]}
    elif kind == 2:
        detail = {"customer": [{"prefix": f"c-{rng.randrange(100)}"}]}
    elif kind == 3:
        detail = {"state": [{"anything-but": rng.sample(STATES, 3)}]}
    elif kind == 4:
        detail = {"coupon": [{"exists": rng.random() < 0.5}]}
    elif kind == 5:
        detail = {"ip": [{"cidr": f"10.{rng.randrange(8)}.0.0/16"}]}
    elif kind == 6:
        detail = {"region": [{"equals-ignore-case": rng.choice(REGIONS).upper()}]}
    elif kind == 7:
        detail = {"path": [{"wildcard": f"/images/*/{rng.randrange(20)}.png"}]}
    elif kind == 8:
        detail = {"file": [{"suffix": rng.choice([".png", ".jpg", ".csv", ".json"])}], "tags": [rng.choice("abcdef")]}
    else:
        detail = {"$or": [{"state": [rng.choice(STATES)]}, {"amount": [{"numeric": [">", rng.randrange(1000)]}]}]}
    rule["detail"] = detail
    return rule


def bus_event(rng: random.Random, i: int) -> dict[str, Any]:
    source = rng.choice(SOURCES)
    detail: dict[str, Any] = {
        "state": rng.choice(STATES), "amount": round(rng.uniform(0, 1200), 2), "customer": f"c-{rng.randrange(1000)}",
        "ip": f"10.{rng.randrange(10)}.{rng.randrange(256)}.{rng.randrange(256)}", "region": rng.choice(REGIONS),
        "path": f"/images/{rng.randrange(50)}/{rng.randrange(20)}.png",
        "file": f"report-{i}{rng.choice(['.png', '.jpg', '.csv', '.json'])}",
        "tags": rng.sample("abcdefgh", 3), "items": [{"sku": f"s{rng.randrange(100)}", "qty": rng.randrange(5)}],
    }
    if rng.random() < 0.5:
        detail["coupon"] = "SAVE10"
    return {"version": "0", "id": f"e{i}", "detail-type": f"{source} {rng.choice(DETAIL_TYPES)}", "source": source,
            "account": "123456789012", "time": "2026-01-01T00:00:00Z", "region": "us-east-1", "resources": [],
            "detail": detail}


def sns_policy(rng: random.Random, i: int) -> dict[str, Any]:
    policy: dict[str, Any] = {"event_type": [f"{SOURCES[i % len(SOURCES)]}.{rng.choice(DETAIL_TYPES)}"]}
    kind = i % 5
    if kind == 0:
        low = rng.randrange(0, 900)
        policy["price"] = [{"numeric": [">=", low, "<=", low + 100]}]
    elif kind == 1:
        policy["region"] = [{"anything-but": rng.sample(REGIONS, 2)}]
    elif kind == 2:
        policy["customer"] = [{"prefix": f"c-{rng.randrange(100)}"}]
    elif kind == 3:
        policy["interests"] = rng.sample(["rugby", "tennis", "golf", "chess", "darts"], 2)
    else:
        policy["coupon"] = [{"exists": False}]
    return policy


def sns_attributes(rng: random.Random) -> dict[str, dict[str, str]]:
    attributes = {
        "event_type": {"DataType": "String", "StringValue": f"{rng.choice(SOURCES)}.{rng.choice(DETAIL_TYPES)}"},
        "price": {"DataType": "Number", "StringValue": str(round(rng.uniform(0, 1000), 2))},
        "region": {"DataType": "String", "StringValue": rng.choice(REGIONS)},
        "customer": {"DataType": "String", "StringValue": f"c-{rng.randrange(1000)}"},
        "interests": {"DataType": "String.Array",
                      "StringValue": json.dumps(rng.sample(["rugby", "tennis", "golf", "chess", "darts"], 2))},
    }
    if rng.random() < 0.5:
        attributes["coupon"] = {"DataType": "String", "StringValue": "SAVE10"}
    return attributes


def rate(match: Callable[[Any], int], items: list[Any], passes: int = 1) -> tuple[float, float, int]:
    """Items per second through `match` (which returns how many rules matched one), the
    medians of `passes` passes over `items` by wall time and by CPU time, and the matches
    in one pass."""
    wall, cpu = [], []
    for _ in range(passes):
        start, start_cpu = time.perf_counter(), time.process_time()
        matches = sum(match(item) for item in items)
        cpu.append(len(items) / max(time.process_time() - start_cpu, 1e-9))
        wall.append(len(items) / (time.perf_counter() - start))
    return statistics.median(wall), statistics.median(cpu), matches


def bus_row(label: str, raw: list[dict[str, Any]], docs: list[Any], passes: int) -> float:
    """Print one row (Squall and moto on the rules `raw`); Squall's events/s."""
    rules: Rules[int] = Rules()
    for i, pattern in enumerate(raw):
        rules.add(i, event_pattern(pattern))
    rules.matching(docs[0])  # builds the index
    ours, ours_cpu, matched = rate(lambda d, r=rules: len(r.matching(d)), docs, passes)
    moto = [EventPattern(json.dumps(p), p) for p in raw]
    sample = docs[: max(200, len(docs) * 10 // len(raw))]
    theirs, _, moto_matched = rate(lambda d, m=moto: sum(p.matches_event(d) for p in m), sample)
    ours_sample = sum(len(rules.matching(d)) for d in sample)
    print(f"{label:>6}  {ours:>12,.0f}  {ours_cpu:>9,.0f}  {theirs:>10,.0f}  {ours / theirs:>6.0f}x  "
          f"{ours_sample} / {moto_matched}  ({matched} over all {len(docs)})")
    return ours


def bench_bus(events: int, seed: int, passes: int) -> None:
    rng = random.Random(seed)
    docs = [bus_event(rng, i) for i in range(events)]
    print(f"EventBridge patterns, {events} events (Squall: median of {passes} passes)")
    print(f"{'rules':>6}  {'squall ev/s':>12}  {'(cpu)':>9}  {'moto ev/s':>10}  {'ratio':>7}  "
          f"matches (squall / moto, same events)")
    first = ours = 0.0
    raw: list[dict[str, Any]] = []
    for count in RULE_COUNTS:
        raw = [bus_rule(rng, i) for i in range(count)]
        ours = bus_row(str(count), raw, docs, passes)
        first = first or ours
    # the last rules again, each source a prefix (no source is a prefix of another, so the
    # same events match): no exact string in common, so the index is not split by source
    bus_row(f"{len(raw)}p", [{**rule, "source": [{"prefix": rule["source"][0]}]} for rule in raw], docs, passes)
    print(f"time for 1,000 rules / time for 10: {first / ours:.2f}x ({len(raw)}p: the same rules with every source "
          f"a prefix)\n")


def bench_sns(events: int, seed: int, passes: int) -> None:
    rng = random.Random(seed)
    messages = [sns_attributes(rng) for _ in range(events)]
    as_delivered = [{k: {"Type": v["DataType"], "Value": v["StringValue"]} for k, v in m.items()} for m in messages]
    print(f"SNS filter policies (MessageAttributes), {events} messages (Squall: median of {passes} passes)")
    print(f"{'rules':>6}  {'squall msg/s':>12}  {'(cpu)':>9}  {'moto msg/s':>10}  {'ratio':>7}  "
          f"matches (squall / moto, same messages)")
    first = 0.0
    for count in RULE_COUNTS:
        raw = [sns_policy(rng, i) for i in range(count)]
        policies = [filter_policy(p) for p in raw]
        rules: Rules[int] = Rules()
        for i, policy in enumerate(policies):
            rules.add(i, policy.pattern)
        document = policies[0].document
        rules.matching(document(messages[0], None))
        ours, ours_cpu, matched = rate(lambda m, r=rules, doc=document: len(r.matching(doc(m, None))), messages,
                                       passes)
        moto = [FilterPolicyMatcher(p, "MessageAttributes") for p in raw]
        indices = list(range(max(200, events * 10 // count)))
        theirs, _, moto_matched = rate(lambda i, m=moto: sum(p.matches(as_delivered[i], "") for p in m), indices)
        ours_sample = sum(len(rules.matching(document(messages[i], None))) for i in indices)
        first = first or ours
        print(f"{count:>6}  {ours:>12,.0f}  {ours_cpu:>9,.0f}  {theirs:>10,.0f}  {ours / theirs:>6.0f}x  "
              f"{ours_sample} / {moto_matched}"
              f"  ({matched} over all {events})")
    print(f"time for 1,000 policies / time for 10: {first / ours:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--passes", type=int, default=5, help="passes of Squall's matcher over the events")
    args = parser.parse_args()
    warn_if_busy()
    bench_bus(args.events, args.seed, args.passes)
    bench_sns(args.events, args.seed, args.passes)


if __name__ == "__main__":
    main()
