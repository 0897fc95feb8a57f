"""Validators for profile fields; the database CHECKs in V2 enforce the same rules."""

from __future__ import annotations

import functools
import re
import zoneinfo
from typing import Any

from django.conf.locale import LANG_INFO
from django.core.exceptions import ValidationError

NOTIFICATION_CHANNELS = ("email", "push", "sms", "in_app")
WEEK_STARTS = ("monday", "sunday", "saturday")
PREFERENCE_KEYS = ("notification_channels", "quiet_hours", "week_start")
# \Z, not $: Python's $ also matches before a final newline, PostgreSQL's does not.
LOCALE_RE = re.compile(r"^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?\Z")
CLOCK_RE = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]\Z")
# users_email_shape; Python's \s covers every Unicode space, more than PostgreSQL's [:space:].
EMAIL_SHAPE_RE = re.compile(r"[^@\s]+@[^@\s]+")


def default_preferences() -> dict[str, Any]:
    """Return the preferences a new profile starts with (the column's DB default)."""
    return {"notification_channels": ["email", "push"], "quiet_hours": None, "week_start": "monday"}


@functools.cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


@functools.cache
def _languages() -> frozenset[str]:
    return frozenset(code.split("-")[0] for code in LANG_INFO)


def validate_timezone(value: str) -> None:
    if value not in _timezones():
        raise ValidationError(
            "%(value)s is not an IANA time zone (e.g. Europe/Berlin, America/New_York, UTC).",
            code="invalid_timezone",
            params={"value": value},
        )


def validate_email_shape(value: str) -> None:
    """Refuse what users_email_shape refuses: Django's EmailValidator takes "a@b"@example.com."""
    if not EMAIL_SHAPE_RE.fullmatch(value):
        raise ValidationError(
            "%(value)s: an email address here has exactly one @ and no spaces, "
            "e.g. ada@example.com.",
            code="invalid_email_shape",
            params={"value": value},
        )


def validate_locale(value: str) -> None:
    if not LOCALE_RE.match(value) or value.split("-")[0] not in _languages():
        raise ValidationError(
            "%(value)s is not a supported BCP 47 language tag (e.g. en, en-GB, pt-BR).",
            code="invalid_locale",
            params={"value": value},
        )


def preference_errors(prefs: Any) -> list[str]:
    """Return what is wrong with a preferences document (empty when it is valid)."""
    if not isinstance(prefs, dict):
        return ["Preferences must be a JSON object."]
    errors = []
    unknown = sorted(set(prefs) - set(PREFERENCE_KEYS))
    if unknown:
        allowed = ", ".join(PREFERENCE_KEYS)
        errors.append(f"Unknown preference keys: {', '.join(unknown)} (allowed: {allowed}).")
    channels = prefs.get("notification_channels", [])
    if not isinstance(channels, list) or not all(
        isinstance(c, str) and c in NOTIFICATION_CHANNELS for c in channels
    ):
        errors.append(
            "notification_channels must be a list drawn from: " + ", ".join(NOTIFICATION_CHANNELS)
        )
    if prefs.get("week_start", "monday") not in WEEK_STARTS:
        errors.append("week_start must be one of: " + ", ".join(WEEK_STARTS))
    quiet = prefs.get("quiet_hours")
    if quiet is not None and not (
        isinstance(quiet, dict)
        and set(quiet) <= {"start", "end"}
        and all(
            isinstance(quiet.get(k), str) and CLOCK_RE.match(quiet[k]) for k in ("start", "end")
        )
    ):
        errors.append('quiet_hours must be null or {"start": "HH:MM", "end": "HH:MM"}.')
    return errors


def validate_preferences(value: Any) -> None:
    errors = preference_errors(value)
    if errors:
        raise ValidationError(errors, code="invalid_preferences")
