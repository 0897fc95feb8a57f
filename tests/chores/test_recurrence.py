"""What a chore's recurrence may say, and the dates it gives (chores.recurrence)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError

from chores.demo import HOUSEHOLDS, TEMPLATES
from chores.recurrence import TooManyOccurrences, occurrences_between, parse
from chores.validators import validate_rrule
from tests.deadline import deadline

NOW = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)  # a Monday morning
BERLIN = ZoneInfo("Europe/Berlin")

REFUSED = [
    ("FREQ=DAILY;INTERVAL=0", "INTERVAL=0 must be a whole number from 1 to 3660 for FREQ=DAILY"),
    ("FREQ=WEEKLY;INTERVAL=-1", "INTERVAL=-1 must be a whole number from 1 to 520"),
    ("FREQ=YEARLY;INTERVAL=11", "from 1 to 10 for FREQ=YEARLY (at most ten years"),
    ("FREQ=SECONDLY", "FREQ=SECONDLY is too often for a chore"),
    ("FREQ=MINUTELY", "FREQ=MINUTELY is too often for a chore"),
    ("FREQ=HOURLY;INTERVAL=12", "FREQ=HOURLY is too often for a chore"),
    ("FREQ=FORTNIGHTLY", "FREQ=FORTNIGHTLY is not a frequency"),
    ("FREQ=DAILY;BYHOUR=8,20", "BYHOUR is not supported: a chore is due once a day"),
    ("FREQ=DAILY;BYMINUTE=0", "BYMINUTE is not supported"),
    ("FREQ=DAILY;COUNT=0", "COUNT=0 must be a whole number from 1 to 1000"),
    ("FREQ=DAILY;COUNT=1001", "COUNT=1001 must be"),
    ("FREQ=DAILY;COUNT=5;UNTIL=20301231", "COUNT and UNTIL cannot both be given"),
    ("FREQ=DAILY;UNTIL=2020", "UNTIL=2020 is not a date: write YYYYMMDD"),
    ("FREQ=DAILY;UNTIL=20260230", "UNTIL=20260230 is not a date"),
    ("FREQ=MONTHLY;BYMONTHDAY=31;BYMONTH=2", "BYMONTHDAY=31;BYMONTH=2 gives no day in any year"),
    ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", "gives no day in any year"),
    ("FREQ=YEARLY;BYMONTH=4,6;BYMONTHDAY=31", "gives no day in any year"),
    ("FREQ=WEEKLY;BYDAY=MO;BYSETPOS=2", "BYDAY=MO;BYSETPOS=2 gives no day"),
    ("FREQ=YEARLY;BYYEARDAY=366;BYMONTH=1", "gives no day"),
    ("FREQ=MONTHLY;BYMONTHDAY=40", "BYMONTHDAY=40: each value must be 1 to 31 or -31 to -1"),
    ("FREQ=MONTHLY;BYMONTHDAY=0", "BYMONTHDAY=0: each value"),
    ("FREQ=YEARLY;BYWEEKNO=60", "BYWEEKNO=60: each value must be 1 to 53"),
    ("FREQ=YEARLY;BYMONTH=13", "BYMONTH=13: each value must be 1 to 12"),
    ("FREQ=MONTHLY;BYMONTHDAY=1,,15", "BYMONTHDAY=1,,15: each value"),
    ("FREQ=WEEKLY;BYMONTHDAY=1", "BYMONTHDAY does not apply to FREQ=WEEKLY"),
    ("FREQ=MONTHLY;BYWEEKNO=1", "BYWEEKNO does not apply to FREQ=MONTHLY"),
    ("FREQ=DAILY;BYDAY=MO;BYSETPOS=1", "BYSETPOS does not apply to FREQ=DAILY"),
    ("FREQ=MONTHLY;BYSETPOS=-1", "BYSETPOS picks among the days another BYxxx part gives"),
    ("FREQ=WEEKLY;BYDAY=1MO", "an ordinal (1MO) applies only to FREQ=MONTHLY or YEARLY"),
    ("FREQ=MONTHLY;BYDAY=6FR", "the ordinal of 6FR must be 1 to 5"),
    ("FREQ=WEEKLY;BYDAY=MON", "BYDAY=MON: use MO, TU, WE, TH, FR, SA or SU"),
    ("FREQ=WEEKLY;WKST=XX", "WKST=XX: use one of MO"),
    ("FREQ=DAILY;FREQ=WEEKLY", "FREQ is given twice"),
    ("BYDAY=MO", "FREQ is missing: start with FREQ=DAILY, WEEKLY, MONTHLY or YEARLY"),
    ("freq=weekly", "freq=weekly: write names in capitals, e.g. FREQ=WEEKLY"),
    ("FREQ=WEEKLY;BYEASTER=0", "BYEASTER is not an RRULE part"),
    ("FREQ=WEEKLY;DTSTART=20260101", "DTSTART is not an RRULE part"),
    ("FREQ=WEEKLY; BYDAY=MO", "' BYDAY=MO' is not NAME=value"),
    ("FREQ=WEEKLY;", "'' is not NAME=value"),
    ("FREQ=WEEKLY\nRRULE:FREQ=DAILY", "is not NAME=value"),
    ("", "'' is not NAME=value"),
]

ACCEPTED = [
    "FREQ=DAILY",
    "RRULE:FREQ=WEEKLY;BYDAY=MO,TH",
    "FREQ=WEEKLY;INTERVAL=2;BYDAY=SA;WKST=SU",
    "FREQ=MONTHLY;BYMONTHDAY=-1",
    "FREQ=MONTHLY;BYMONTHDAY=31",
    "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
    "FREQ=MONTHLY;INTERVAL=3;BYDAY=1SA",
    "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29",
    "FREQ=YEARLY;INTERVAL=10",
    "FREQ=YEARLY;BYWEEKNO=53;BYDAY=MO",
    "FREQ=DAILY;INTERVAL=3660",
    "FREQ=DAILY;COUNT=1000",
    "FREQ=WEEKLY;UNTIL=20261231",
    "FREQ=WEEKLY;UNTIL=20261231T170000Z",
    # Sorted: the test ids must be the same in every process (pytest-xdist's workers).
    *sorted({rule for _, _, rule in TEMPLATES}),
    *sorted({rule for _, _, chores in HOUSEHOLDS.values() for _, _, rule, _ in chores}),
]


@pytest.mark.parametrize(("text", "reason"), REFUSED)
def test_a_rule_a_chore_cannot_use_is_refused_saying_why(text: str, reason: str) -> None:
    with deadline(2), pytest.raises(ValidationError) as caught:
        validate_rrule(text)
    assert caught.value.code == "invalid_rrule"
    assert reason in caught.value.messages[0]


@pytest.mark.parametrize("text", ACCEPTED)
def test_household_rules_are_accepted(text: str) -> None:
    validate_rrule(text)


def window(text: str, dtstart: datetime, days: int = 14, limit: int = 0) -> list[datetime]:
    end = NOW + timedelta(days=days)
    return occurrences_between(parse(text), dtstart, NOW, end, zone=BERLIN, limit=limit or days + 1)


def local_days(moments: list[datetime]) -> list[date]:
    return [m.astimezone(BERLIN).date() for m in moments]


def test_until_as_a_date_includes_that_whole_day_in_the_households_time_zone() -> None:
    got = window("FREQ=DAILY;UNTIL=20260305", datetime(2026, 1, 1, 19))
    assert local_days(got) == [date(2026, 3, day) for day in (2, 3, 4, 5)]
    assert {m.astimezone(BERLIN).time() for m in got} == {time(19)}


def test_until_in_utc_is_compared_as_an_instant() -> None:
    # 19:00 in Berlin is 18:00 UTC in March: an UNTIL of 17:00 UTC on the 5th stops on the 4th.
    got = window("FREQ=DAILY;UNTIL=20260305T170000Z", datetime(2026, 1, 1, 19))
    assert local_days(got)[-1] == date(2026, 3, 4)


def test_count_is_counted_from_the_first_day_not_from_the_window() -> None:
    got = window("FREQ=WEEKLY;COUNT=3", datetime(2026, 2, 16, 9))  # Feb 16, 23, Mar 2
    assert local_days(got) == [date(2026, 3, 2)]


def test_interval_keeps_its_step_from_the_first_day_however_long_ago() -> None:
    got = window("FREQ=WEEKLY;INTERVAL=2;BYDAY=TU", datetime(1990, 1, 2, 9))  # a Tuesday
    weeks = (local_days(got)[0] - date(1990, 1, 2)).days // 7
    assert weeks % 2 == 0 and len(got) == 1


@pytest.mark.parametrize(
    ("text", "dtstart"),
    [
        ("FREQ=DAILY", datetime(1, 1, 1, 19)),
        ("FREQ=MONTHLY;BYMONTHDAY=31", datetime(1900, 1, 31, 8)),
        ("FREQ=WEEKLY;INTERVAL=3;BYDAY=MO,FR;WKST=SU", datetime(1700, 6, 7, 7)),
        ("FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=29", datetime(1204, 2, 29)),
    ],
)
def test_a_task_that_started_centuries_ago_is_scheduled_in_milliseconds(
    text: str, dtstart: datetime
) -> None:
    with deadline(1):
        assert window(text, dtstart, days=366)


def test_a_rule_that_stopped_long_ago_or_never_comes_again_ends_quickly() -> None:
    with deadline(2):
        assert window("FREQ=DAILY;UNTIL=20000101", datetime(1990, 1, 1)) == []
        # Every 7 days from a Tuesday never falls on a Monday.
        assert window("FREQ=DAILY;INTERVAL=7;BYDAY=MO", datetime(2026, 3, 3)) == []


def test_more_occurrences_than_the_cap_is_an_error_naming_the_cap() -> None:
    with pytest.raises(TooManyOccurrences, match="more than 3 occurrences between 2026-03-02"):
        window("FREQ=DAILY", datetime(2026, 1, 1), days=7, limit=3)
