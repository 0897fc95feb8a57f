"""Property-based tests of the profile validators: what they accept, PostgreSQL accepts.

Each validator may only raise ValidationError, and a value it lets through must pass the
V2 CHECK constraints, or saving it would be a server error instead of a form error.
Hypothesis prints the failing value and a `@reproduce_failure` blob when it finds one.
"""

from __future__ import annotations

import zoneinfo
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import DatabaseError, transaction
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import UserProfile
from accounts.validators import (
    preference_errors,
    validate_locale,
    validate_preferences,
    validate_timezone,
)
from chores.models import Household

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)
clocks = st.one_of(
    st.from_regex(r"\A([01][0-9]|2[0-3]):[0-5][0-9]\Z"),
    st.from_regex(r"\A[0-9]{1,2}:[0-9]{2}\s?\Z"),
    st.text(max_size=6),
)
preferences = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "notification_channels": st.one_of(
                st.lists(st.sampled_from(["email", "push", "sms", "in_app", "fax"])),
                json_values,
            ),
            "week_start": st.one_of(st.sampled_from(["monday", "sunday", "Friday"]), json_values),
            "quiet_hours": st.one_of(
                st.none(),
                st.fixed_dictionaries({"start": clocks, "end": clocks}),
                json_values,
            ),
            "theme": json_values,
        },
    ),
)
zones = sorted(zoneinfo.available_timezones())
zone_names = st.one_of(
    st.sampled_from(zones),
    st.tuples(st.sampled_from(zones), st.sampled_from(["\n", " ", "/", "\x00", ""])).map(
        lambda t: t[0] + t[1]
    ),
    st.sampled_from(zones).map(str.lower),
    st.text(max_size=40),
)
locales = st.one_of(
    st.from_regex(r"\A[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?\n?\Z"),
    st.text(max_size=12),
)
# Addresses that Python's email validators and PostgreSQL's regular expressions may read
# differently: quoted local parts (with @ and spaces inside), Unicode letters and spaces.
emails = st.one_of(
    st.emails(),
    st.tuples(
        st.lists(st.sampled_from(["a", "b", ".", "@", " ", "\\ ", "\\@", "\\\t"]), max_size=4),
        st.emails(),
    ).map(lambda t: '"' + "".join(t[0]) + '"@' + t[1].split("@")[1]),
    st.tuples(st.emails(), st.sampled_from(["\u3000", "\u2028", "\u00a0", "\u1680", "\t"])).map(
        lambda t: t[0].split("@")[0] + "@" + t[1] + t[0].split("@")[1]
    ),
    st.text(max_size=30),
)

EXAMPLES = settings(
    max_examples=150,
    deadline=None,
    print_blob=True,
    # The fixtures (a database transaction, a profile) serve every example; each example
    # writes inside its own savepoint, which is rolled back.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def accepted(validator: Any, value: Any) -> bool:
    try:
        validator(value)
    except ValidationError as err:
        assert err.messages and all(m.strip() for m in err.messages)
        return False
    return True


class Rollback(Exception):
    """Undo an example's write."""


def database_accepts(**fields: Any) -> bool:
    """Whether PostgreSQL takes these profile fields (the write is undone either way)."""
    try:
        with transaction.atomic():
            UserProfile.all_objects.create(cognito_sub="sub-probe", **fields)
            raise Rollback
    except Rollback:
        return True
    except DatabaseError:
        return False


@settings(max_examples=300, deadline=None, print_blob=True)
@given(preferences)
def test_preferences_are_accepted_or_refused_with_messages_never_another_error(
    value: Any,
) -> None:
    errors = preference_errors(value)
    assert all(isinstance(e, str) and e for e in errors)
    assert accepted(validate_preferences, value) == (not errors)


@pytest.mark.django_db
@EXAMPLES
@given(preferences)
def test_preferences_the_validator_accepts_the_database_accepts(value: Any) -> None:
    if accepted(validate_preferences, value):
        assert database_accepts(email="p@example.com", preferences=value), value


@pytest.mark.django_db
@EXAMPLES
@given(zone_names, locales)
def test_time_zones_and_locales_the_validators_accept_the_database_and_zoneinfo_accept(
    zone: str, locale: str
) -> None:
    if accepted(validate_timezone, zone):
        zoneinfo.ZoneInfo(zone)
        assert database_accepts(email="z@example.com", timezone=zone), zone
    if accepted(validate_locale, locale):
        assert database_accepts(email="l@example.com", locale=locale), locale


@pytest.mark.django_db
@EXAMPLES
@given(emails)
def test_emails_a_profile_accepts_the_database_accepts(email: str) -> None:
    profile = UserProfile(cognito_sub="sub-probe", email=email)
    try:
        profile.full_clean(validate_unique=False, validate_constraints=False)
    except ValidationError as err:
        assert err.message_dict
        return
    assert database_accepts(email=profile.email), profile.email


@pytest.fixture
def someone() -> UserProfile:
    return UserProfile.objects.create(cognito_sub="sub-1", email="ada@example.com")


@pytest.mark.django_db
@settings(
    max_examples=40,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(emails, zone_names, locales, clocks, clocks)
def test_any_profile_form_input_gets_a_page_not_a_server_error(
    admin_client: Any,
    someone: UserProfile,
    email: str,
    zone: str,
    locale: str,
    quiet_start: str,
    quiet_end: str,
) -> None:
    url = reverse("admin:accounts_userprofile_change", args=[someone.pk])
    data = {
        "email": email,
        "display_name": "Ada",
        "timezone": zone,
        "locale": locale,
        "notification_channels": ["email"],
        "quiet_hours_start": quiet_start,
        "quiet_hours_end": quiet_end,
        "week_start": "monday",
        "is_active": "on",
        "last_seen_at_0": "",
        "last_seen_at_1": "",
    }
    assert admin_client.post(url, data).status_code in (200, 302)


@pytest.mark.django_db
@EXAMPLES
@given(zone_names)
def test_a_household_time_zone_the_validator_accepts_the_database_accepts(zone: str) -> None:
    if accepted(validate_timezone, zone):
        try:
            with transaction.atomic():
                Household.objects.create(name="Probe", timezone=zone)
                raise Rollback
        except Rollback:
            pass
