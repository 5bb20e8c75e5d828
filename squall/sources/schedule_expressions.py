"""Schedule expressions as EventBridge Scheduler reads them: `rate(...)`, `cron(...)`, `at(...)`.

`parse(expression)` checks an expression as AWS does (the same ones accepted and rejected)
and raises `ConfigError` with AWS's message, "Parameter ScheduleExpression is not valid",
followed by the reason, naming the field at fault. The parsed expression answers one
question, `after(instant, zone, anchor)`: its first firing strictly after `instant`.

The arithmetic is our own rather than croniter's or aws-croniter's: croniter is Unix cron
(Sunday is 0, day-of-month and day-of-week are OR-ed, no year field, no `L-n`/`LW`), and
aws-croniter, which follows AWS's grammar, fails on `LW`, on `L` alone in day-of-week, and
works in UTC only. Wall-clock time in a zone follows EventBridge Scheduler's
daylight-saving rules:

- a cron or at time that does not exist (the hour skipped in spring) does not fire;
- a time that happens twice (the hour repeated in autumn) fires once, the first time;
- a rate is a fixed duration (`rate(1 day)` is 24 hours, whatever the clock says), counted
  from its anchor: the schedule's start, or when it was first declared.
"""

from __future__ import annotations

import bisect
import calendar
import functools
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from squall.errors import ConfigError

#: AWS's message for any invalid schedule expression; ours add the reason after it
INVALID = "Parameter ScheduleExpression is not valid"

MIN_YEAR, MAX_YEAR = 1970, 2199

_MONTHS = {name: number for number, name in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), start=1)}
#: AWS numbers days of the week from Sunday = 1 to Saturday = 7
_DAYS = {name: number for number, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), start=1)}

_RATE = re.compile(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)")
_RATE_UNITS = {"minute": 60, "hour": 3600, "day": 86400}
_AT = re.compile(r"at\((\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\)")
_NUMBER = re.compile(r"\d{1,4}")


class InvalidExpression(ConfigError):
    """A schedule expression AWS would refuse; the message says why."""


def _invalid(expression: str, reason: str) -> InvalidExpression:
    return InvalidExpression(f"{INVALID}: {expression!r}: {reason}")


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name` (ScheduleExpressionTimezone); ConfigError naming it if unknown."""
    if not isinstance(name, str) or name not in _zone_names():
        raise ConfigError(f"invalid timezone {name!r}: must be an IANA time zone name such as "
                          f"'UTC' or 'Europe/Berlin'")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"invalid timezone {name!r}: {exc}") from None


_ZONES: set[str] = set()


def _zone_names() -> set[str]:
    if not _ZONES:
        _ZONES.update(available_timezones(), {"UTC"})
    return _ZONES


# ---- the expressions -------------------------------------------------------------------


class Expression(ABC):
    """A parsed schedule expression."""

    text: str

    @abstractmethod
    def after(self, instant: float, tz: ZoneInfo, anchor: float) -> float | None:
        """The first firing strictly after `instant` (epoch seconds), None if there is none.
        `anchor` is where a rate counts from; cron and at ignore it."""

    @property
    def recurring(self) -> bool:
        return True


@dataclass(frozen=True)
class Rate(Expression):
    text: str
    #: seconds between firings
    period: int

    def after(self, instant: float, tz: ZoneInfo, anchor: float) -> float | None:
        if instant < anchor:
            return anchor
        return anchor + (int((instant - anchor) // self.period) + 1) * self.period


@dataclass(frozen=True)
class At(Expression):
    text: str
    #: the wall-clock time, in the schedule's zone
    local: datetime

    def after(self, instant: float, tz: ZoneInfo, anchor: float) -> float | None:
        when = _instant(self.local, tz)
        return when if when is not None and when > instant else None

    @property
    def recurring(self) -> bool:
        return False


#: the days of one month a day field selects
DaySet = Callable[[int, int], list[int]]


@dataclass(frozen=True)
class Cron(Expression):
    text: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: tuple[int, ...]
    years: tuple[int, ...]
    days: DaySet

    def after(self, instant: float, tz: ZoneInfo, anchor: float) -> float | None:
        # wall-clock minutes from the one `instant` falls in; the first that exists and is
        # later than `instant` is the firing (fold 0: a repeated time counts once, first)
        start = datetime.fromtimestamp(instant, tz).replace(tzinfo=None, second=0, microsecond=0)
        for local in self._local_times(start):
            when = _instant(local, tz)
            if when is not None and when > instant:
                return when
        return None

    def _local_times(self, start: datetime) -> Iterator[datetime]:
        """Every wall-clock time the fields select from `start` on, in order."""
        for year in self.years[bisect.bisect_left(self.years, start.year):]:
            same_year = year == start.year
            for month in _from(self.months, start.month if same_year else 1):
                same_month = same_year and month == start.month
                for day in _from(self._days(year, month), start.day if same_month else 1):
                    same_day = same_month and day == start.day
                    for hour in _from(self.hours, start.hour if same_day else 0):
                        same_hour = same_day and hour == start.hour
                        for minute in _from(self.minutes, start.minute if same_hour else 0):
                            yield datetime(year, month, day, hour, minute)


    def _days(self, year: int, month: int) -> list[int]:
        """The selected days of a month, worked out once per month (a schedule asks each minute)."""
        cache: dict[tuple[int, int], list[int]] = self.__dict__.setdefault("_day_cache", {})
        if (year, month) not in cache:
            if len(cache) > 24:
                cache.clear()
            cache[(year, month)] = self.days(year, month)
        return cache[(year, month)]


def _from(values: tuple[int, ...] | list[int], first: int) -> tuple[int, ...] | list[int]:
    return values[bisect.bisect_left(values, first):]


def _instant(local: datetime, tz: ZoneInfo) -> float | None:
    """Epoch seconds of a wall-clock time in `tz`, or None if the clock skips it."""
    aware = local.replace(tzinfo=tz)  # fold 0: the first of a repeated time
    when = aware.timestamp()
    if datetime.fromtimestamp(when, tz).replace(tzinfo=None) != local:
        return None
    return when


# ---- parsing ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def parse(expression: str) -> Expression:
    """The expression, checked as EventBridge Scheduler checks it (InvalidExpression if not).
    Parsed once per text: expressions are immutable, and a thousand schedules share a few."""
    if not isinstance(expression, str):
        raise InvalidExpression(f"{INVALID}: expected a string such as 'rate(5 minutes)', not {expression!r}")
    if expression.startswith("rate("):
        return _rate(expression)
    if expression.startswith("cron("):
        return _cron(expression)
    if expression.startswith("at("):
        return _at(expression)
    raise _invalid(expression, "expected rate(value unit), cron(fields) or at(yyyy-mm-ddThh:mm:ss)")


def _rate(expression: str) -> Rate:
    match = _RATE.fullmatch(expression)
    if match is None:
        raise _invalid(expression, "a rate is rate(value unit): a positive whole number, one space and "
                                   "minute, minutes, hour, hours, day or days")
    value, unit = int(match[1]), match[2]
    if value < 1:
        raise _invalid(expression, "the value of a rate must be a positive whole number")
    if (value == 1) != (not unit.endswith("s")):
        raise _invalid(expression, f"for a value of 1 the unit is singular ({unit.rstrip('s')}), "
                                   f"for any other value plural ({unit.rstrip('s')}s)")
    return Rate(expression, value * _RATE_UNITS[unit.rstrip("s")])


def _at(expression: str) -> At:
    match = _AT.fullmatch(expression)
    if match is None:
        raise _invalid(expression, "a one-time schedule is at(yyyy-mm-ddThh:mm:ss), a date and time "
                                   "without a zone offset (the schedule's timezone applies)")
    try:
        local = datetime(*(int(part) for part in match.groups()))  # type: ignore[arg-type]
    except ValueError as exc:
        raise _invalid(expression, f"no such date and time: {exc}") from None
    return At(expression, local)


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int] | None = None
    #: whether `/` increments are allowed (not in day-of-week)
    steps: bool = True


_MINUTES = _Field("minutes", 0, 59)
_HOURS = _Field("hours", 0, 23)
_DAY_OF_MONTH = _Field("day-of-month", 1, 31)
_MONTH = _Field("month", 1, 12, _MONTHS)
_DAY_OF_WEEK = _Field("day-of-week", 1, 7, _DAYS, steps=False)
_YEAR = _Field("year", MIN_YEAR, MAX_YEAR)


def _cron(expression: str) -> Cron:
    if not expression.endswith(")"):
        raise _invalid(expression, "a cron expression is cron(fields), with a closing parenthesis")
    fields = expression[5:-1].split(" ")
    if len(fields) != 6 or not all(fields):
        raise _invalid(expression, f"a cron expression has six fields separated by single spaces (minutes hours "
                                   f"day-of-month month day-of-week year), not {len([f for f in fields if f])}")
    minutes, hours, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        raise _invalid(expression, "day-of-month and day-of-week cannot both be given: one of them must be ? "
                                   f"(day-of-month is {dom!r}, day-of-week {dow!r})")
    try:
        days = _day_of_month(dom) if dow == "?" else _day_of_week(dow)
        return Cron(expression, _values(_MINUTES, minutes), _values(_HOURS, hours), _values(_MONTH, month),
                    _values(_YEAR, year), days)
    except _FieldError as exc:
        raise _invalid(expression, str(exc)) from None


class _FieldError(Exception):
    pass


def _number(field: _Field, text: str, low: int | None = None, high: int | None = None) -> int:
    """One value of a field: a number (or a name, in month and day-of-week) within its range."""
    low = field.low if low is None else low
    high = field.high if high is None else high
    if field.names and text.upper() in field.names:
        return field.names[text.upper()]
    if not _NUMBER.fullmatch(text):
        what = f"a number from {low} to {high}" + (f" or a name ({', '.join(field.names)})" if field.names else "")
        raise _FieldError(f"{field.name} field: {text!r} is not {what}")
    value = int(text)
    if not low <= value <= high:
        raise _FieldError(f"{field.name} field: {value} is out of range {low}-{high}")
    return value


def _values(field: _Field, text: str) -> tuple[int, ...]:
    """A field of values, ranges (wrapping past the end, as FRI-MON), `*` and increments, in a list."""
    chosen: set[int] = set()
    for item in text.split(","):
        base, slash, step_text = item.partition("/")
        if slash and not field.steps:
            raise _FieldError(f"{field.name} field: increments (/) are not allowed; use , - * ? L or #")
        if not base:
            raise _FieldError(f"{field.name} field: {item!r} is empty before or between commas")
        if base == "*":
            first, last = field.low, field.high
        elif "-" in base:
            start, _, end = base.partition("-")
            first, last = _number(field, start), _number(field, end)
        else:
            first = _number(field, base)
            last = field.high if slash else first
        step = _number(field, step_text, 1, field.high) if slash else 1
        span = field.high - field.low + 1
        count = (last - first) % span + 1  # a range like 22-2 wraps past the end
        chosen.update(field.low + (first - field.low + offset) % span for offset in range(0, count, step))
    return tuple(sorted(chosen))


def _day_of_month(text: str) -> DaySet:
    if text == "L":
        return lambda year, month: [calendar.monthrange(year, month)[1]]
    if text == "LW":
        return lambda year, month: [_last_weekday(year, month)]
    if text.startswith("L-"):
        offset = _number(_DAY_OF_MONTH, text[2:], 1, 30)
        return lambda year, month: [d for d in [calendar.monthrange(year, month)[1] - offset] if d >= 1]
    if text.endswith("W"):
        day = _number(_DAY_OF_MONTH, text[:-1])
        return lambda year, month: _nearest_weekday(year, month, day)
    if "L" in text or "W" in text or "#" in text:
        raise _FieldError(f"day-of-month field: {text!r}: L, L-n, LW and nW stand alone, and # belongs "
                          f"to day-of-week")
    values = _values(_DAY_OF_MONTH, text)
    return lambda year, month: [d for d in values if d <= calendar.monthrange(year, month)[1]]


def _day_of_week(text: str) -> DaySet:
    if "#" in text:
        day_text, _, nth_text = text.partition("#")
        if "," in text or "-" in day_text:
            raise _FieldError(f"day-of-week field: {text!r}: with #, day-of-week holds one expression only")
        weekday = _number(_DAY_OF_WEEK, day_text)
        nth = _number(_Field("day-of-week", 1, 5), nth_text)
        return lambda year, month: _weekdays(year, month, weekday)[nth - 1:nth]
    if text == "L":  # L alone is the last day of the week, Saturday
        return lambda year, month: _weekdays(year, month, _DAYS["SAT"])
    if text.endswith("L"):
        weekday = _number(_DAY_OF_WEEK, text[:-1])
        return lambda year, month: _weekdays(year, month, weekday)[-1:]
    weekdays = set(_values(_DAY_OF_WEEK, text))
    return lambda year, month: [d for d in range(1, calendar.monthrange(year, month)[1] + 1)
                                if _aws_weekday(date(year, month, d)) in weekdays]


def _aws_weekday(day: date) -> int:
    """AWS's day number (Sunday 1 ... Saturday 7) of a date (Python's Monday is 0)."""
    return (day.weekday() + 1) % 7 + 1


def _weekdays(year: int, month: int, weekday: int) -> list[int]:
    """The days of a month that fall on AWS day `weekday`."""
    first = (weekday - _aws_weekday(date(year, month, 1))) % 7 + 1
    return list(range(first, calendar.monthrange(year, month)[1] + 1, 7))


def _nearest_weekday(year: int, month: int, day: int) -> list[int]:
    """The weekday (Monday to Friday) nearest `day`, never in another month: 1W on a Saturday
    is Monday the 3rd. Nothing if the month has no such day (31W in April)."""
    last = calendar.monthrange(year, month)[1]
    if day > last:
        return []
    weekday = date(year, month, day).weekday()
    if weekday == 5:  # Saturday: Friday before, unless that is last month
        return [day - 1] if day > 1 else [day + 2]
    if weekday == 6:  # Sunday: Monday after, unless that is next month
        return [day + 1] if day < last else [day - 2]
    return [day]


def _last_weekday(year: int, month: int) -> int:
    last = calendar.monthrange(year, month)[1]
    return last - max(0, date(year, month, last).weekday() - 4)


# ---- when a schedule fires ---------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """When a schedule fires: its expression read in its zone, between `start` and `end`
    (epoch seconds, inclusive), a rate counted from `anchor`."""

    expression: Expression
    tz: ZoneInfo
    anchor: float
    start: float | None = None
    end: float | None = None

    def after(self, instant: float) -> float | None:
        """The first firing strictly after `instant`, None once there are no more."""
        if self.start is not None and instant < self.start:
            instant = self.start - 0.001  # `start` itself fires if the expression selects it
        when = self.expression.after(instant, self.tz, self.anchor)
        if when is None or (self.end is not None and when > self.end):
            return None
        return when

    def between(self, after: float, until: float) -> Iterator[float]:
        """Firings in (after, until], in order."""
        when = self.after(after)
        while when is not None and when <= until:
            yield when
            when = self.after(when)

    def upcoming(self, after: float, count: int) -> list[float]:
        """The next `count` firings strictly after `after` (fewer if the schedule ends)."""
        found: list[float] = []
        when = self.after(after)
        while when is not None and len(found) < count:
            found.append(when)
            when = self.after(when)
        return found


def iso(instant: float, tz: ZoneInfo) -> str:
    """An instant as ISO-8601 with its UTC offset in `tz` (2026-03-29T03:00:00+02:00)."""
    return datetime.fromtimestamp(instant, tz).isoformat(timespec="seconds")


def utc_iso(instant: float) -> str:
    """An instant as EventBridge writes event times: UTC, seconds, `Z` (2026-03-29T01:00:00Z)."""
    return datetime.fromtimestamp(instant, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def moment(value: datetime | str, tz: ZoneInfo, what: str) -> float:
    """Epoch seconds of a datetime or ISO-8601 text (read in `tz` without an offset); ConfigError
    naming `what` if it is neither."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ConfigError(f"invalid {what} {value!r}: must be an ISO-8601 date and time") from None
    if not isinstance(value, datetime):
        raise ConfigError(f"invalid {what} {value!r}: must be a datetime or an ISO-8601 string")
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.timestamp()
