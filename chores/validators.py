"""Validators for the chores models; the CHECKs in V3-V10 enforce the same rules."""

from __future__ import annotations

import re

from dateutil.rrule import rrulestr
from django.core.exceptions import ValidationError

# The shape the tasks_recurrence_shape CHECK accepts: NAME=value parts, FREQ among them.
RRULE_SHAPE = re.compile(r"(RRULE:)?[A-Z]+=[^;=\s]+(;[A-Z]+=[^;=\s]+)*")


def validate_rrule(value: str) -> None:
    """Accept one RFC 5545 RRULE (e.g. FREQ=WEEKLY;BYDAY=MO), as dateutil parses it."""
    parts = value.removeprefix("RRULE:").split(";")
    if not RRULE_SHAPE.fullmatch(value) or not any(p.startswith("FREQ=") for p in parts):
        raise ValidationError(
            "%(value)s is not an RRULE: write NAME=value parts separated by ';' with a FREQ, "
            "e.g. FREQ=WEEKLY;BYDAY=MO,TH.",
            code="invalid_rrule",
            params={"value": value},
        )
    try:
        rrulestr(value)
    except (ValueError, TypeError) as err:
        raise ValidationError(
            "%(value)s is not a valid RRULE: %(reason)s.",
            code="invalid_rrule",
            params={"value": value, "reason": err},
        ) from None


def validate_not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("This field cannot be blank.", code="blank")
