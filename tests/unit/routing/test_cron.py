"""Schedule expressions as EventBridge Scheduler reads them: which it accepts, which it
refuses (and why), and when they fire, daylight-saving transitions included.

The accepted and refused expressions are those AWS documents and those whose outcome on
AWS is recorded (EventBridge's own examples, and expressions PutRule was seen to take or
refuse with "Parameter ScheduleExpression is not valid").
"""

from __future__ import annotations

from datetime import datetime

import pytest

from squall.sources.schedule_expressions import INVALID, InvalidExpression, Timing, iso, parse, zone

VALID = [
    # the examples of the EventBridge user guide
    "cron(0 10 * * ? *)", "cron(15 12 * * ? *)", "cron(0 18 ? * MON-FRI *)", "cron(0 8 1 * ? *)",
    "cron(0/15 * * * ? *)", "cron(0/10 * ? * MON-FRI *)", "cron(0/5 8-17 ? * MON-FRI *)",
    "cron(0/30 20-23 ? * MON-FRI *)", "cron(0/30 0-2 ? * MON-FRI *)", "cron(0 2 ? * SAT *)",
    "cron(5,35 14 * * ? *)", "cron(15 10 ? * 6L 2002-2005)", "cron(0 2 ? * SAT#3 *)", "cron(* * ? * SAT#3 *)",
    "cron(0/5 5 ? JAN 1-5 2022)", "cron(0 3 * * ? *)",
    # taken by AWS though unusual
    "cron(0-15/1 8-8 ? * 2,3,4,5,6,7 *)", "cron(30-30 13-13 ? * 2,4,6 *)", "cron(1-31/30 1-1 ? * 1,7 *)",
    # L, W and # in their places; names in either case
    "cron(0 0 L * ? *)", "cron(0 0 L-3 * ? *)", "cron(0 0 LW * ? *)", "cron(0 0 15W * ? *)", "cron(0 0 ? * L *)",
    "cron(0 0 ? * 2#1 *)", "cron(0 0 1 JAN,jul ? 2199)", "cron(0 0 ? * sun *)", "cron(0 22-2 * * ? *)",
    "rate(1 minute)", "rate(5 minutes)", "rate(1 hour)", "rate(12 hours)", "rate(1 day)", "rate(7 days)",
    "at(2026-12-01T09:00:00)", "at(2028-02-29T23:59:59)",
]

INVALID_EXPRESSIONS = [
    # refused by PutRule (AWS's own record)
    ("rate(10 seconds)", "a rate is rate(value unit)"), ("rate(10 years)", "a rate is rate(value unit)"),
    ("rate(1 minutes)", "singular"), ("rate(1 hours)", "singular"), ("rate(1 days)", "singular"),
    ("rate(10 minute)", "plural"), ("rate(10 hour)", "plural"), ("rate(10 day)", "plural"),
    ("rate()", "rate(value unit)"), ("rate(10)", "rate(value unit)"), ("rate(10 minutess)", "rate(value unit)"),
    ("rate(foo minutes)", "rate(value unit)"), ("rate(0 minutes)", "positive"),
    ("rate(-10 minutes)", "rate(value unit)"), ("rate(10 MINUTES)", "rate(value unit)"),
    ("rate( 10 minutes )", "rate(value unit)"), (" rate(10 minutes)", "expected rate(value unit)"),
    ("cron(0 1 * * * *)", "one of them must be ?"), ("cron(7 20 * * NOT *)", "one of them must be ?"),
    ("cron(INVALID)", "six fields"), ("cron(0 dummy ? * MON-FRI *)", "hours field: 'dummy'"),
    ("cron(71 8 1 * ? *)", "minutes field: 71 is out of range 0-59"), ("cron(*/60 * * * ? *)", "minutes field: 60"),
    ("cron(15 12 ? * -1 *)", "day-of-week field"), ("cron(0/5 * * * *)", "six fields"),
    ("cron(0/5, 9-18, ?, *, MON-FRI, *)", "one of them must be ?"),
    # the documented rules
    ("cron(0 0 ? * ? *)", "one of them must be ?"), ("cron(0 24 * * ? *)", "hours field: 24"),
    ("cron(0 0 32 * ? *)", "day-of-month field: 32"), ("cron(0 0 0 * ? *)", "day-of-month field: 0"),
    ("cron(0 0 * 13 ? *)", "month field: 13"), ("cron(0 0 ? * 8 *)", "day-of-week field: 8"),
    ("cron(0 0 * * ? 1969)", "year field: 1969"), ("cron(0 0 * * ? 2200)", "year field: 2200"),
    ("cron(0 0 ? * 3#1,6#3 *)", "one expression only"), ("cron(0 0 ? * 2#6 *)", "out of range 1-5"),
    ("cron(0 0 ? * 1/2 *)", "increments (/) are not allowed"), ("cron(0 0 L,15 * ? *)", "stand alone"),
    ("cron(0 0 L-31 * ? *)", "out of range 1-30"), ("cron(0 0 * FOO ? *)", "month field: 'FOO'"),
    ("cron(0  0 * * ? *)", "six fields"), ("cron(0 0 * * ? *", "closing parenthesis"),
    ("cron(0 0 ? * MON-FOO *)", "day-of-week field: 'FOO'"), ("cron(0,,5 0 * * ? *)", "empty"),
    ("at(2026-12-01 09:00:00)", "at(yyyy-mm-ddThh:mm:ss)"), ("at(2026-12-01T09:00:00Z)", "without a zone"),
    ("at(2026-12-01T09:00)", "at(yyyy-mm-ddThh:mm:ss)"), ("at(2026-02-30T09:00:00)", "no such date"),
    ("every 5 minutes", "expected rate(value unit), cron(fields) or at("),
]


@pytest.mark.parametrize("expression", VALID)
def test_accepted(expression):
    assert parse(expression).text == expression


@pytest.mark.parametrize(("expression", "reason"), INVALID_EXPRESSIONS)
def test_refused_with_the_reason(expression, reason):
    with pytest.raises(InvalidExpression) as error:
        parse(expression)
    message = str(error.value)
    assert message.startswith(f"{INVALID}: {expression!r}: ")
    assert reason in message


def firings(expression, start, count=4, tz="UTC"):
    """The next firings after `start` (ISO, read in `tz`), as ISO times with their offsets."""
    zone_ = zone(tz)
    after = datetime.fromisoformat(start).replace(tzinfo=zone_).timestamp()
    return [iso(t, zone_) for t in Timing(parse(expression), zone_, after).upcoming(after, count)]


@pytest.mark.parametrize(("expression", "start", "expected"), [
    # plain fields, strictly after the start
    ("cron(0 10 * * ? *)", "2026-01-01T10:00:00", ["2026-01-02T10:00:00+00:00", "2026-01-03T10:00:00+00:00"]),
    ("cron(5,35 14 * * ? *)", "2026-01-01T14:05:00", ["2026-01-01T14:35:00+00:00", "2026-01-02T14:05:00+00:00"]),
    ("cron(0 22-2 * * ? *)", "2026-01-01T23:30:00",  # a range wrapping past midnight
     ["2026-01-02T00:00:00+00:00", "2026-01-02T01:00:00+00:00", "2026-01-02T02:00:00+00:00",
      "2026-01-02T22:00:00+00:00"]),
    ("cron(0 0 ? * FRI-MON *)", "2026-01-01T00:00:00",  # Friday to Monday: 2, 3, 4, 5 January 2026
     ["2026-01-02T00:00:00+00:00", "2026-01-03T00:00:00+00:00", "2026-01-04T00:00:00+00:00",
      "2026-01-05T00:00:00+00:00"]),
    # L: the last day; L-2: two before it; LW: the last weekday
    ("cron(0 0 L * ? *)", "2028-01-15T00:00:00", ["2028-01-31T00:00:00+00:00", "2028-02-29T00:00:00+00:00"]),
    ("cron(0 0 L-2 * ? *)", "2026-02-01T00:00:00", ["2026-02-26T00:00:00+00:00", "2026-03-29T00:00:00+00:00"]),
    ("cron(0 0 LW * ? *)", "2026-05-01T00:00:00", ["2026-05-29T00:00:00+00:00", "2026-06-30T00:00:00+00:00"]),
    # W: the nearest weekday, never across the month's edge (1 Aug 2026 is a Saturday)
    ("cron(0 0 1W * ? *)", "2026-07-15T00:00:00", ["2026-08-03T00:00:00+00:00", "2026-09-01T00:00:00+00:00"]),
    ("cron(0 0 15W * ? *)", "2026-08-01T00:00:00", ["2026-08-14T00:00:00+00:00", "2026-09-15T00:00:00+00:00"]),
    ("cron(0 0 31W * ? *)", "2026-04-01T00:00:00", ["2026-05-29T00:00:00+00:00", "2026-07-31T00:00:00+00:00"]),
    # day-of-week: 6L the last Friday, L alone Saturday, 2#1 the first Monday
    ("cron(15 10 ? * 6L 2002-2005)", "2005-11-01T00:00:00",
     ["2005-11-25T10:15:00+00:00", "2005-12-30T10:15:00+00:00"]),
    ("cron(0 0 ? * L *)", "2026-04-01T00:00:00", ["2026-04-04T00:00:00+00:00", "2026-04-11T00:00:00+00:00"]),
    ("cron(0 2 ? * SAT#3 *)", "2026-01-01T00:00:00", ["2026-01-17T02:00:00+00:00", "2026-02-21T02:00:00+00:00"]),
    ("cron(0 0 ? * 2#5 *)", "2026-01-01T00:00:00", ["2026-03-30T00:00:00+00:00", "2026-06-29T00:00:00+00:00"]),
    # sparse and ending: 29 February; a year range that runs out
    ("cron(0 0 29 2 ? *)", "2026-01-01T00:00:00", ["2028-02-29T00:00:00+00:00", "2032-02-29T00:00:00+00:00"]),
    ("cron(0 0 1 1 ? 2198-2199)", "2197-06-01T00:00:00", ["2198-01-01T00:00:00+00:00", "2199-01-01T00:00:00+00:00"]),
    ("cron(0 0 30 2 ? *)", "2026-01-01T00:00:00", []),
    # rates count fixed periods from their start; at() fires once, if it is still ahead
    ("rate(5 minutes)", "2026-01-01T00:00:00", ["2026-01-01T00:05:00+00:00", "2026-01-01T00:10:00+00:00"]),
    ("rate(1 day)", "2026-01-01T06:30:00", ["2026-01-02T06:30:00+00:00", "2026-01-03T06:30:00+00:00"]),
    ("at(2026-12-01T09:00:00)", "2026-11-30T00:00:00", ["2026-12-01T09:00:00+00:00"]),
    ("at(2026-12-01T09:00:00)", "2026-12-01T09:00:00", []),
])
def test_firings(expression, start, expected):
    assert firings(expression, start, count=len(expected) or 3) == expected


@pytest.mark.parametrize(("expression", "tz", "start", "expected"), [
    # spring forward: Berlin skips 02:00-03:00 on 29 March 2026; a time in the gap does not fire
    ("cron(30 2 * * ? *)", "Europe/Berlin", "2026-03-28T00:00:00",
     ["2026-03-28T02:30:00+01:00", "2026-03-30T02:30:00+02:00"]),
    ("cron(0 * * * ? *)", "Europe/Berlin", "2026-03-29T00:30:00",
     ["2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00"]),
    # fall back: Berlin repeats 02:00-03:00 on 25 October 2026; a repeated time fires once, the first time
    ("cron(30 2 * * ? *)", "Europe/Berlin", "2026-10-24T12:00:00",
     ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]),
    # New York: 2:00 skipped on 8 March 2026, 1:00-2:00 repeated on 1 November 2026
    ("cron(0/30 1-3 * * ? *)", "America/New_York", "2026-03-08T00:00:00",
     ["2026-03-08T01:00:00-05:00", "2026-03-08T01:30:00-05:00", "2026-03-08T03:00:00-04:00",
      "2026-03-08T03:30:00-04:00"]),
    ("cron(0/30 1-2 * * ? *)", "America/New_York", "2026-11-01T00:45:00",
     ["2026-11-01T01:00:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-01T02:00:00-05:00",
      "2026-11-01T02:30:00-05:00"]),
    # a rate is a fixed duration: rate(1 day) keeps 24 hours across the change
    ("rate(1 day)", "Europe/Berlin", "2026-03-28T09:00:00",
     ["2026-03-29T10:00:00+02:00", "2026-03-30T10:00:00+02:00"]),
    ("rate(1 hour)", "America/New_York", "2026-11-01T00:30:00",
     ["2026-11-01T01:30:00-04:00", "2026-11-01T01:30:00-05:00", "2026-11-01T02:30:00-05:00"]),
    # at() in the zone; in the skipped hour it never fires
    ("at(2026-07-01T09:00:00)", "Europe/Berlin", "2026-06-01T00:00:00", ["2026-07-01T09:00:00+02:00"]),
    ("at(2026-03-29T02:30:00)", "Europe/Berlin", "2026-03-01T00:00:00", []),
])
def test_daylight_saving(expression, tz, start, expected):
    assert firings(expression, start, count=len(expected) or 3, tz=tz) == expected


def test_start_and_end_bound_the_firings():
    tz = zone("UTC")
    start = datetime(2026, 1, 1, 0, 10, tzinfo=tz).timestamp()
    end = datetime(2026, 1, 1, 0, 30, tzinfo=tz).timestamp()
    timing = Timing(parse("cron(0/10 * * * ? *)"), tz, start, start, end)
    assert [iso(t, tz)[11:16] for t in timing.upcoming(start - 3600, 10)] == ["00:10", "00:20", "00:30"]
    rate = Timing(parse("rate(15 minutes)"), tz, start, start, end)
    assert [iso(t, tz)[11:16] for t in rate.upcoming(start - 3600, 10)] == ["00:10", "00:25"]


def test_unknown_timezone():
    with pytest.raises(Exception, match="invalid timezone 'Mars/Olympus'"):
        zone("Mars/Olympus")
