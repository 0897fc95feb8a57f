"""A chore's recurrence: the RFC 5545 RRULE subset a household chore can use, and its dates.

What a chore may say, and why:
- FREQ is DAILY, WEEKLY, MONTHLY or YEARLY. A chore is due at most once a day, at the
  task's due time; HOURLY, MINUTELY and SECONDLY (and BYHOUR, BYMINUTE, BYSECOND) would
  flood the schedule with assignments nobody can do. One task per time of day instead.
- INTERVAL is 1 or more (dateutil loops forever on INTERVAL=0) and spans at most ten years.
- COUNT is 1 to 1000 and excludes UNTIL (RFC 5545); UNTIL is a date or a UTC time.
- BYxxx values are within RFC 5545's ranges and apply to the FREQ the RFC allows them for,
  and together they match some day: BYMONTH=2;BYMONTHDAY=30 is refused, as it never comes.

Occurrences are computed with dateutil, bounded: a rule without COUNT starts iterating
just before the window (not at the task's first day), and the window is moved by whole
400-year Gregorian cycles (the calendar and its weekdays repeat exactly) to just below
dateutil's year-9999 end, so a rule that stops matching costs at most 400 years of
iteration, never an endless loop.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dateutil import rrule as du

FREQUENCIES = {"DAILY": du.DAILY, "WEEKLY": du.WEEKLY, "MONTHLY": du.MONTHLY, "YEARLY": du.YEARLY}
SUB_DAILY = ("HOURLY", "MINUTELY", "SECONDLY")
# At most ten years between two occurrences.
MAX_INTERVAL = {"DAILY": 3660, "WEEKLY": 520, "MONTHLY": 120, "YEARLY": 10}
MAX_COUNT = 1000
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
PARTS = (
    "FREQ",
    "INTERVAL",
    "COUNT",
    "UNTIL",
    "BYDAY",
    "BYMONTHDAY",
    "BYMONTH",
    "BYYEARDAY",
    "BYWEEKNO",
    "BYSETPOS",
    "WKST",
)
TIME_PARTS = ("BYHOUR", "BYMINUTE", "BYSECOND")
# Numeric BYxxx parts: (smallest absolute value, largest, negative allowed, FREQs allowed).
NUMERIC = {
    "BYMONTH": (1, 12, False, ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")),
    "BYMONTHDAY": (1, 31, True, ("DAILY", "MONTHLY", "YEARLY")),
    "BYYEARDAY": (1, 366, True, ("YEARLY",)),
    "BYWEEKNO": (1, 53, True, ("YEARLY",)),
    # A DAILY period is one day: nothing for BYSETPOS to choose from.
    "BYSETPOS": (1, 366, True, ("WEEKLY", "MONTHLY", "YEARLY")),
}
KWARG = {
    "BYMONTH": "bymonth",
    "BYMONTHDAY": "bymonthday",
    "BYYEARDAY": "byyearday",
    "BYWEEKNO": "byweekno",
    "BYSETPOS": "bysetpos",
}
CYCLE_YEARS = 400  # the Gregorian calendar, weekdays included, repeats every 400 years
LAST_CYCLE = 9599  # windows are moved into [9599, 9999): dateutil stops at year 9999
END_OF_DAY = time(23, 59, 59)

PART_RE = re.compile(r"([A-Za-z-]+)=(.*)")
INTEGER_RE = re.compile(r"[+-]?[0-9]{1,6}")
BYDAY_RE = re.compile(r"([+-]?[0-9]{1,2})?(MO|TU|WE|TH|FR|SA|SU)")
UNTIL_RE = re.compile(r"([0-9]{8})(T[0-9]{6}Z?)?")


class RecurrenceError(ValueError):
    """A recurrence that is not a chore's RRULE; the message names the part and the fix."""


@dataclass(frozen=True)
class Recurrence:
    """A parsed rule: dateutil's keyword arguments, with UNTIL kept as written."""

    freq: str
    interval: int = 1
    count: int | None = None
    until: date | datetime | None = None  # a date, a local time, or an aware UTC time
    by: dict[str, Any] = field(default_factory=dict)

    def until_local(self, zone: ZoneInfo) -> datetime | None:
        """UNTIL as a wall time of `zone`: a date means the end of that day."""
        if self.until is None:
            return None
        if not isinstance(self.until, datetime):
            return datetime.combine(self.until, END_OF_DAY)
        if self.until.tzinfo is None:
            return self.until
        return self.until.astimezone(zone).replace(tzinfo=None)

    def rule(self, dtstart: datetime, *, until: datetime | None = None) -> du.rrule:
        """The dateutil rule from `dtstart` (naive wall time of the household)."""
        return du.rrule(
            FREQUENCIES[self.freq],
            dtstart=dtstart,
            interval=self.interval,
            count=self.count,
            until=until,
            **self.by,
        )

    def pinned(self, dtstart: datetime) -> Recurrence:
        """The same rule with the parts dateutil would take from `dtstart` written out."""
        if any(k in self.by for k in ("byweekday", "bymonthday", "byyearday", "byweekno")):
            return self
        if self.freq == "WEEKLY":
            return replace(self, by={**self.by, "byweekday": dtstart.weekday()})
        if self.freq == "MONTHLY":
            return replace(self, by={**self.by, "bymonthday": dtstart.day})
        if self.freq == "YEARLY":
            month = self.by.get("bymonth", dtstart.month)
            return replace(self, by={**self.by, "bymonth": month, "bymonthday": dtstart.day})
        return self


def parse(text: str) -> Recurrence:
    """Parse and check a chore's RRULE; raise RecurrenceError saying what is wrong."""
    if not isinstance(text, str):
        raise RecurrenceError("a recurrence must be text, e.g. FREQ=WEEKLY;BYDAY=MO")
    return _parse(text)


@functools.lru_cache(maxsize=1024)
def _parse(text: str) -> Recurrence:
    body = text.removeprefix("RRULE:")
    values: dict[str, str] = {}
    for part in body.split(";"):
        match = PART_RE.fullmatch(part)
        if not match:
            raise RecurrenceError(
                f"{part!r} is not NAME=value: write parts like FREQ=WEEKLY;BYDAY=MO,TH "
                "separated by ';', without spaces"
            )
        name, value = match.groups()
        if name != name.upper():
            raise RecurrenceError(f"{part}: write names in capitals, e.g. {part.upper()}")
        if name in TIME_PARTS:
            raise RecurrenceError(
                f"{name} is not supported: a chore is due once a day at the task's due time; "
                "make one task per time of day"
            )
        if name not in PARTS:
            raise RecurrenceError(f"{name} is not an RRULE part; use {_names(PARTS)}")
        if name in values:
            raise RecurrenceError(f"{name} is given twice")
        values[name] = value
    freq = _freq(values.get("FREQ"))
    rec = Recurrence(
        freq=freq,
        interval=_interval(values.get("INTERVAL"), freq),
        count=_count(values.get("COUNT")),
        until=_until(values.get("UNTIL")),
        by=_by(values, freq),
    )
    if rec.count is not None and rec.until is not None:
        raise RecurrenceError("COUNT and UNTIL cannot both be given (RFC 5545): keep one")
    _check_matches_a_day(rec, values)
    return rec


def _names(names: tuple[str, ...]) -> str:
    return ", ".join(names[:-1]) + " or " + names[-1]


def _freq(value: str | None) -> str:
    if value is None:
        raise RecurrenceError(f"FREQ is missing: start with FREQ={_names(tuple(FREQUENCIES))}")
    if value in SUB_DAILY:
        raise RecurrenceError(
            f"FREQ={value} is too often for a chore: use DAILY, WEEKLY, MONTHLY or YEARLY "
            "(one task per time of day for a chore done several times a day)"
        )
    if value not in FREQUENCIES:
        raise RecurrenceError(f"FREQ={value} is not a frequency: use {_names(tuple(FREQUENCIES))}")
    return value


def _integer(value: str) -> int | None:
    return int(value) if INTEGER_RE.fullmatch(value) else None


def _interval(value: str | None, freq: str) -> int:
    if value is None:
        return 1
    number = _integer(value)
    if number is None or not 1 <= number <= MAX_INTERVAL[freq]:
        raise RecurrenceError(
            f"INTERVAL={value} must be a whole number from 1 to {MAX_INTERVAL[freq]} for "
            f"FREQ={freq} (at most ten years between occurrences)"
        )
    return number


def _count(value: str | None) -> int | None:
    if value is None:
        return None
    number = _integer(value)
    if number is None or not 1 <= number <= MAX_COUNT:
        raise RecurrenceError(
            f"COUNT={value} must be a whole number from 1 to {MAX_COUNT}; "
            "leave COUNT out for a chore without end"
        )
    return number


def _until(value: str | None) -> date | datetime | None:
    if value is None:
        return None
    match = UNTIL_RE.fullmatch(value)
    try:
        if match is None:
            raise ValueError(value)
        day = datetime.strptime(match[1], "%Y%m%d").date()
        if not match[2]:
            return day
        clock = datetime.strptime(match[2][1:7], "%H%M%S").time()
        moment = datetime.combine(day, clock)
        return moment.replace(tzinfo=UTC) if match[2].endswith("Z") else moment
    except ValueError:
        raise RecurrenceError(
            f"UNTIL={value} is not a date: write YYYYMMDD (e.g. 20261231) or a UTC time "
            "YYYYMMDDTHHMMSSZ"
        ) from None


def _by(values: dict[str, str], freq: str) -> dict[str, Any]:
    by: dict[str, Any] = {}
    for name, (low, high, negative, freqs) in NUMERIC.items():
        if name not in values:
            continue
        if freq not in freqs:
            raise RecurrenceError(
                f"{name} does not apply to FREQ={freq}; it works with FREQ={_names(freqs)}"
            )
        numbers = set()
        for item in values[name].split(","):
            n = _integer(item)
            if n is None or not (low <= n <= high or (negative and -high <= n <= -low)):
                span = f"{low} to {high}"
                if negative:
                    span += f" or -{high} to -{low} (counted from the end)"
                raise RecurrenceError(f"{name}={values[name]}: each value must be {span}")
            numbers.add(n)
        by[KWARG[name]] = tuple(sorted(numbers))
    if "BYDAY" in values:
        by["byweekday"] = _byday(values["BYDAY"], freq, by)
    if "WKST" in values:
        if values["WKST"] not in WEEKDAYS:
            raise RecurrenceError(f"WKST={values['WKST']}: use one of {_names(WEEKDAYS)}")
        by["wkst"] = WEEKDAYS.index(values["WKST"])
    if "bysetpos" in by and not set(by) - {"bysetpos", "wkst"}:
        raise RecurrenceError(
            "BYSETPOS picks among the days another BYxxx part gives, e.g. "
            "BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1 (the last weekday)"
        )
    return by


def _byday(value: str, freq: str, by: dict[str, Any]) -> tuple[du.weekday, ...]:
    days = []
    for item in value.split(","):
        match = BYDAY_RE.fullmatch(item)
        if not match:
            raise RecurrenceError(
                f"BYDAY={value}: use {_names(WEEKDAYS)}, with an ordinal for MONTHLY or "
                "YEARLY (e.g. 1MO, -1FR)"
            )
        ordinal, name = match.groups()
        weekday = du.weekdays[WEEKDAYS.index(name)]
        if ordinal is not None:
            # The nth weekday of the month (MONTHLY, or YEARLY with BYMONTH) or of the year.
            limit = 5 if freq == "MONTHLY" or "bymonth" in by else 53
            if freq not in ("MONTHLY", "YEARLY") or "byweekno" in by:
                raise RecurrenceError(
                    f"BYDAY={value}: an ordinal ({item}) applies only to FREQ=MONTHLY or "
                    f"YEARLY without BYWEEKNO; write BYDAY={name}"
                )
            n = int(ordinal)
            if not 1 <= abs(n) <= limit:
                within = "month" if limit == 5 else "year"
                raise RecurrenceError(
                    f"BYDAY={value}: the ordinal of {item} must be 1 to {limit} or -{limit} "
                    f"to -1 (the nth {name} of the {within})"
                )
            weekday = weekday(n)
        days.append(weekday)
    return tuple(dict.fromkeys(days))


def _check_matches_a_day(rec: Recurrence, values: dict[str, str]) -> None:
    # Searched near year 9999, where dateutil stops by itself when nothing matches. A day
    # pattern comes back within each 400-year cycle. A DAILY rule gives the days its
    # filters match, as a YEARLY rule with the same filters does, which dateutil checks a
    # year at a time (400 steps, not 146,097). Every month holds a whole week every year,
    # so a WEEKLY pattern that ever matches does within the last two years.
    probe = replace(rec, interval=1, count=None, until=None)
    start = datetime(LAST_CYCLE + 1, 1, 1)
    if rec.freq == "DAILY":
        probe = replace(probe, freq="YEARLY")
    elif rec.freq == "WEEKLY":
        start = datetime(9998, 1, 1)
    if _first(probe.rule(start)) is None:
        parts = ";".join(f"{k}={v}" for k, v in values.items() if k.startswith("BY"))
        raise RecurrenceError(f"{parts} gives no day in any year, so the chore would never be due")


def _first(rule: du.rrule) -> datetime | None:
    return next(_safe(iter(rule)), None)


def _safe(occurrences: Any) -> Any:
    """Yield from a dateutil iterator until it ends or runs past year 9999."""
    while True:
        try:
            yield next(occurrences)
        except StopIteration:
            return
        except (ValueError, OverflowError):  # a date past 9999-12-31: the calendar's end
            return


def _cycles(year: int, into: int) -> int:
    """Years to add, a whole number of 400-year cycles, to bring `year` into [into, into+400)."""
    return into + (year - into) % CYCLE_YEARS - year


def _moved(moment: datetime, years: int) -> datetime:
    return moment.replace(year=moment.year + years)


def first_occurrence(rec: Recurrence, dtstart: datetime, zone: ZoneInfo) -> datetime | None:
    """The first occurrence from `dtstart` (naive wall time) within 400 years, or None."""
    years = _cycles(dtstart.year, LAST_CYCLE - CYCLE_YEARS)
    first = _first(replace(rec, count=None, until=None).rule(_moved(dtstart, years)))
    if first is None or first.year - years - dtstart.year > CYCLE_YEARS:
        return None
    first = _moved(first, -years)
    until = rec.until_local(zone)
    return None if until is not None and first > until else first


def _fast_forward(rec: Recurrence, dtstart: datetime, start: datetime) -> datetime:
    """A later start on the rule's period grid, one period or more before `start`."""
    n = rec.interval
    if rec.freq == "DAILY":
        periods = (start.date() - dtstart.date()).days // n
        return dtstart + timedelta(days=(periods - 1) * n) if periods > 1 else dtstart
    if rec.freq == "WEEKLY":
        week = dtstart.date() - timedelta(days=(dtstart.weekday() - rec.by.get("wkst", 0)) % 7)
        periods = (start.date() - week).days // (7 * n)
        if periods <= 1:
            return dtstart
        return datetime.combine(week + timedelta(weeks=(periods - 1) * n), dtstart.time())
    if rec.freq == "MONTHLY":
        first = dtstart.year * 12 + dtstart.month - 1
        periods = (start.year * 12 + start.month - 1 - first) // n
        if periods <= 1:
            return dtstart
        year, month = divmod(first + (periods - 1) * n, 12)
        return datetime.combine(date(year, month + 1, 1), dtstart.time())
    periods = (start.year - dtstart.year) // n
    if periods <= 1:
        return dtstart
    return datetime.combine(date(dtstart.year + (periods - 1) * n, 1, 1), dtstart.time())


class TooManyOccurrences(RecurrenceError):
    """The rule has more occurrences in the window than the per-task cap allows."""


def occurrences_between(
    rec: Recurrence,
    dtstart: datetime,
    start: datetime,
    end: datetime,
    *,
    zone: ZoneInfo,
    limit: int,
) -> list[datetime]:
    """Occurrences in [start, end] (aware) of the rule from `dtstart`, a wall time of `zone`.

    Raise TooManyOccurrences when there are more than `limit`.
    """
    # dateutil works in wall time; a day either side covers any UTC offset and DST shift.
    low = start.astimezone(zone).replace(tzinfo=None) - timedelta(days=1)
    high = end.astimezone(zone).replace(tzinfo=None) + timedelta(days=1)
    if dtstart > high:
        return []
    if rec.count is None:  # COUNT counts from the first day: only then iterate from there
        rec = rec.pinned(dtstart)
        dtstart = _fast_forward(rec, dtstart, low)
    years = max(0, _cycles(high.year, LAST_CYCLE))
    until = rec.until_local(zone)
    if until is not None:
        until = _moved(until, years) if until.year + years <= 9999 else None
    found: list[datetime] = []
    for moment in _safe(iter(rec.rule(_moved(dtstart, years), until=until))):
        if moment > _moved(high, years):
            break
        due = _moved(moment, -years).replace(tzinfo=zone)
        if start <= due <= end:
            if len(found) == limit:
                raise TooManyOccurrences(
                    f"more than {limit} occurrences between {start:%Y-%m-%d} and {end:%Y-%m-%d}"
                )
            found.append(due)
    return found
