"""The hop counter: Lambda's `Lineage` field of the X-Ray header, encoded and carried."""

from __future__ import annotations

from squall.observability import lineage
from squall.observability.context import SpanContext, message_context, parse_xray, trace_attribute
from squall.observability.lineage import MAX_ENTRIES, function_key, hop, invocations, merge, parse

F, G = function_key("f"), function_key("g")


def test_a_function_key_is_eight_hex_digits_and_stable():
    assert len(F) == 8 and int(F, 16) >= 0
    assert F == function_key("f") != G


def test_each_hop_counts_one_more_for_the_function_that_sent():
    first = hop(None, "f")
    assert first == f"{F}:1"
    assert invocations(first, "f") == 1 and invocations(first, "g") == 0
    chain = hop(hop(first, "g"), "f")
    assert parse(chain) == {F: 2, G: 1}
    assert chain == f"{F}:2|{G}:1"  # the most run first
    assert (invocations(chain, "f"), invocations(chain, "g")) == (2, 1)
    assert invocations(f"0{F}:9|{F}:3", "f") == 3  # a key is a whole entry's, not a suffix of another
    assert invocations(None, "f") == invocations("", "f") == 0


def test_malformed_entries_are_ignored_not_fatal():
    assert parse(f"{F}:3|nothex00:2|{G}:x|{G}|:4|{G}:9999999|{F}:1") == {F: 3}
    assert invocations("garbage", "f") == 0


def test_a_batch_takes_the_highest_count_of_each_function():
    assert parse(merge([f"{F}:2|{G}:5", f"{F}:7", ""])) == {F: 7, G: 5}


def test_the_lineage_stays_small():
    counts = {function_key(f"fn{i}"): i + 1 for i in range(MAX_ENTRIES + 10)}
    kept = parse(lineage.encode(counts))
    assert len(kept) == MAX_ENTRIES and min(kept.values()) == 11  # the least run went first


def test_it_rides_in_the_x_ray_header_without_disturbing_the_trace():
    context = SpanContext("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", True)
    attribute = trace_attribute(context, hop(None, "f"))
    header = attribute["stringValue"]
    assert header == f"{context.xray()};Lineage={F}:1"
    assert parse_xray(header) == context
    assert message_context({"AWS.TraceHeader": attribute}) == context
    assert lineage.from_xray(header) == f"{F}:1"


def test_an_untraced_send_carries_the_lineage_alone():
    header = trace_attribute(None, f"{F}:4")["stringValue"]
    assert header == f"Lineage={F}:4"
    assert parse_xray(header) is None
    assert lineage.from_xray(header) == f"{F}:4"
    assert lineage.from_xray("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1") == ""
    assert lineage.from_xray(None) == "" and lineage.from_xray("XLineage=ab") == ""
