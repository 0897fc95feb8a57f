"""Property-based tests of recurrence rules: refused cleanly, or scheduled fast and bounded.

Hypothesis prints the failing rule and a `@reproduce_failure` blob when it finds one.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr
from django.core.exceptions import ValidationError
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from chores.models import Household, Task
from chores.recurrence import (
    PARTS,
    TIME_PARTS,
    RecurrenceError,
    first_occurrence,
    occurrences_between,
    parse,
)
from chores.schedule import occurrences
from chores.validators import validate_rrule
from tests.deadline import deadline

NOW = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
FREQS = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY", "HOURLY", "MINUTELY", "SECONDLY")
NAMES = (*PARTS, *TIME_PARTS, "BYEASTER", "DTSTART")
DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")

numbers = st.one_of(st.integers(-60, 400), st.integers()).map(str)
byday = st.tuples(
    st.sampled_from(["", "1", "-1", "2", "+3", "5", "-5", "53", "0"]), st.sampled_from(DAYS)
)
values = st.one_of(
    numbers,
    st.sampled_from(FREQS + DAYS),
    st.lists(st.one_of(numbers, byday.map("".join)), min_size=1, max_size=4).map(",".join),
    st.dates(date(1, 1, 1), date(9999, 12, 31)).map(lambda d: f"{d:%Y%m%d}".zfill(8)),
    st.from_regex(r"\A[0-9]{8}T[0-9]{6}Z?\Z"),
    st.text(alphabet="0123456789TZ+-,", min_size=1, max_size=16),
)
part = st.tuples(st.sampled_from(NAMES), values).map("=".join)
# Mostly rules that start with a FREQ, so that many get past the first checks.
rules = st.one_of(
    st.tuples(st.sampled_from(FREQS), st.lists(part, max_size=4)).map(
        lambda t: ";".join([f"FREQ={t[0]}", *t[1]])
    ),
    st.lists(part, min_size=1, max_size=5).map(";".join),
    st.text(max_size=60),
)


# Rules that mostly parse: a FREQ and parts in their ranges. Without UNTIL, whose meaning
# differs from dateutil's on purpose (a date is the end of that day), unless asked.
good_parts = st.one_of(
    st.integers(1, 12).map(lambda n: f"INTERVAL={n}"),
    st.integers(1, 40).map(lambda n: f"COUNT={n}"),
    st.lists(st.integers(1, 12), min_size=1, max_size=3).map(
        lambda ns: "BYMONTH=" + ",".join(map(str, ns))
    ),
    st.lists(st.sampled_from([1, 2, 15, 28, 29, 30, 31, -1, -2]), min_size=1, max_size=3).map(
        lambda ns: "BYMONTHDAY=" + ",".join(map(str, ns))
    ),
    st.lists(byday.map("".join), min_size=1, max_size=3).map(lambda ds: "BYDAY=" + ",".join(ds)),
    st.lists(st.sampled_from([1, 2, 3, -1, -2]), min_size=1, max_size=2).map(
        lambda ns: "BYSETPOS=" + ",".join(map(str, ns))
    ),
    st.sampled_from(DAYS).map(lambda d: f"WKST={d}"),
)
until = st.dates(date(1990, 1, 1), date(2040, 12, 31)).map(lambda d: f"UNTIL={d:%Y%m%d}")


def good_rules(
    *extra: st.SearchStrategy[str], freqs: tuple[str, ...] = FREQS[:4]
) -> st.SearchStrategy[str]:
    parts = st.lists(st.one_of(good_parts, *extra), max_size=3, unique_by=lambda p: p.split("=")[0])
    return st.tuples(st.sampled_from(freqs), parts).map(lambda t: ";".join([f"FREQ={t[0]}", *t[1]]))


def checked(text: str) -> bool:
    """Whether validate_rrule accepts `text`; it may only raise ValidationError."""
    with deadline(5):
        try:
            validate_rrule(text)
        except ValidationError as err:
            assert err.messages and all(m.strip() for m in err.messages)
            return False
    return True


@settings(max_examples=300, deadline=None, print_blob=True)
@given(st.one_of(rules, good_rules(until)))
def test_a_rule_is_accepted_or_refused_with_a_message_never_another_error(text: str) -> None:
    checked(text)


@settings(max_examples=200, deadline=None, print_blob=True)
@given(
    good_rules(until, freqs=FREQS),
    st.dates(date(1, 1, 1), date(2030, 12, 31)),
    st.integers(1, 366),
    st.sampled_from(["Europe/Berlin", "America/New_York", "Pacific/Kiritimati", "UTC"]),
)
def test_an_accepted_rule_gives_at_most_one_occurrence_a_day_quickly(
    text: str, starts_on: date, days: int, zone: str
) -> None:
    assume(checked(text))
    task = Task(household=Household(timezone=zone), recurrence=text, starts_on=starts_on)
    end = NOW + timedelta(days=days)
    with deadline(2):
        found = occurrences(task, NOW, end, limit=days + 1)
    assert found == sorted(set(found))
    assert all(NOW <= due <= end for due in found)
    assert len({due.astimezone(ZoneInfo(zone)).date() for due in found}) == len(found)


def parsed(text: str) -> bool:
    try:
        parse(text)
    except RecurrenceError:
        return False
    return True


@settings(max_examples=150, deadline=None, print_blob=True)
@given(
    good_rules(),
    st.datetimes(datetime(1990, 1, 1), datetime(2026, 6, 1)),
    st.integers(0, 400),
    st.integers(1, 60),
    st.sampled_from(["UTC", "Europe/Berlin", "America/New_York"]),
)
def test_the_window_gives_what_dateutil_gives_iterating_from_the_first_day(
    text: str, dtstart: datetime, offset: int, days: int, name: str
) -> None:
    assume(parsed(text))
    zone = ZoneInfo(name)
    rule = parse(text)
    assume(first_occurrence(rule, dtstart, zone) is not None)
    start = NOW + timedelta(hours=offset * 7)
    end = start + timedelta(days=days)
    with deadline(10):
        expected = rrulestr(text, dtstart=dtstart.replace(tzinfo=zone)).between(
            start, end, inc=True
        )
    got = occurrences_between(rule, dtstart, start, end, zone=zone, limit=days + 1)
    assert got == expected


@settings(max_examples=80, deadline=None, print_blob=True)
@given(good_rules())
def test_a_rule_refused_as_never_due_has_no_day_in_a_whole_400_year_cycle(text: str) -> None:
    try:
        parse(text)
        never = False
    except RecurrenceError as err:
        assume("gives no day" in str(err))
        never = True
    # dateutil itself, with the rule's own FREQ, over the cycle that ends at year 9999.
    reference = rrulestr(text, dtstart=datetime(9600, 1, 1))
    reference = reference.replace(interval=1, count=None, until=None)
    with deadline(10):
        try:
            found = next(iter(reference), None)
        except ValueError:  # a week running past 9999-12-31
            found = None
    assert (found is None) == never
