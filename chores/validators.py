"""Validators for the chores models; the CHECKs in V3-V10 enforce the same rules or less."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError

from accounts.validators import validate_timezone
from chores.recurrence import CYCLE_YEARS, RecurrenceError, first_occurrence, parse


def validate_rrule(value: str) -> None:
    """Accept an RRULE a chore can recur by (chores.recurrence says which), e.g. FREQ=WEEKLY."""
    try:
        parse(value)
    except RecurrenceError as err:
        raise ValidationError(
            "%(reason)s.", code="invalid_rrule", params={"value": value, "reason": err}
        ) from None


def validate_recurrence_start(
    value: str, starts_on: date, due_time: time | None, timezone: str
) -> None:
    """Refuse a valid rule that never comes on or after `starts_on` (e.g. an UNTIL before it)."""
    try:
        rule = parse(value)
        validate_timezone(timezone)
    except (RecurrenceError, ValidationError):
        return  # the field validators report these
    zone = ZoneInfo(timezone)
    dtstart = datetime.combine(starts_on, due_time or time(23, 59, 59))
    if first_occurrence(rule, dtstart, zone) is None:
        raise ValidationError(
            "%(value)s has no occurrence in the %(years)s years from %(starts_on)s: change "
            "the rule or the start date.",
            code="rrule_never_due",
            params={"value": value, "years": CYCLE_YEARS, "starts_on": starts_on.isoformat()},
        )


def validate_not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("This field cannot be blank.", code="blank")
