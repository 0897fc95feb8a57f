"""The `users` table (V2) and the UserProfile model: constraints, trigger, validation."""

from __future__ import annotations

import json
import uuid

import pytest
from django.core.exceptions import ValidationError

from accounts.models import UserProfile
from tests.dbschema import CHECK, NOT_NULL, UNIQUE, rejects, sql

pytestmark = pytest.mark.django_db

INSERT = "INSERT INTO users (cognito_sub, email) VALUES (%s, %s)"


@pytest.fixture
def alice() -> UserProfile:
    return UserProfile.objects.create(cognito_sub="sub-alice", email="Alice@Example.com")


def test_the_database_generates_the_id_and_defaults(alice: UserProfile) -> None:
    assert isinstance(alice.pk, uuid.UUID)
    row = UserProfile.objects.get(pk=alice.pk)
    assert row.timezone == "UTC"
    assert row.locale == "en"
    assert row.is_active is True
    assert row.email_verified is False
    assert row.preferences == {
        "notification_channels": ["email", "push"],
        "quiet_hours": None,
        "week_start": "monday",
    }
    assert row.created_at is not None
    assert row.updated_at is not None


def test_it_rejects_a_duplicate_cognito_sub(alice: UserProfile) -> None:
    rejects(INSERT, ["sub-alice", "other@example.com"], sqlstate=UNIQUE)


def test_it_requires_a_cognito_sub() -> None:
    rejects(INSERT, [None, "x@example.com"], sqlstate=NOT_NULL)
    rejects(INSERT, ["  ", "x@example.com"], sqlstate=CHECK)


def test_email_is_unique_whatever_its_case(alice: UserProfile) -> None:
    message = rejects(INSERT, ["sub-2", "alice@EXAMPLE.com"], sqlstate=UNIQUE)
    assert "users_email_lower_uniq" in message


def test_a_soft_deleted_profile_frees_its_email(alice: UserProfile) -> None:
    alice.soft_delete()
    UserProfile.objects.create(cognito_sub="sub-2", email="alice@example.com")
    assert UserProfile.all_objects.by_email("ALICE@example.com").count() == 2


def test_it_rejects_a_malformed_email() -> None:
    rejects(INSERT, ["sub-2", "not-an-address"], sqlstate=CHECK)


@pytest.mark.parametrize("locale", ["english", "EN", "en_US", "en-us"])
def test_it_rejects_a_locale_that_is_not_bcp47(locale: str) -> None:
    rejects(
        "INSERT INTO users (cognito_sub, email, locale) VALUES ('s', 'a@b.c', %s)",
        [locale],
        sqlstate=CHECK,
    )


@pytest.mark.parametrize(
    "prefs",
    [
        [],
        {"colour": "green"},
        {"notification_channels": ["pigeon"]},
        {"notification_channels": "email"},
        {"week_start": "friday"},
        {"quiet_hours": {"start": "25:00", "end": "07:00"}},
        {"quiet_hours": {"start": "22:00"}},
        {"quiet_hours": "22-07"},
    ],
)
def test_it_rejects_invalid_preferences(prefs: object) -> None:
    rejects(
        "INSERT INTO users (cognito_sub, email, preferences) VALUES ('s', 'a@b.c', %s::jsonb)",
        [json.dumps(prefs)],
        sqlstate=CHECK,
    )
    with pytest.raises(ValidationError) as excinfo:
        UserProfile(cognito_sub="s", email="a@b.co", preferences=prefs).full_clean()
    assert "preferences" in excinfo.value.message_dict


def test_it_accepts_valid_preferences() -> None:
    prefs = {
        "notification_channels": ["sms", "in_app"],
        "quiet_hours": {"start": "22:00", "end": "07:30"},
        "week_start": "sunday",
    }
    sql(
        "INSERT INTO users (cognito_sub, email, preferences) VALUES ('s', 'a@b.c', %s::jsonb)",
        [json.dumps(prefs)],
    )
    UserProfile(cognito_sub="s2", email="b@b.co", preferences=prefs).full_clean()


def test_a_deleted_profile_cannot_be_active(alice: UserProfile) -> None:
    rejects("UPDATE users SET deleted_at = now() WHERE id = %s", [alice.pk], sqlstate=CHECK)
    alice.deleted_at = alice.created_at
    with pytest.raises(ValidationError, match="deleted profile cannot be active"):
        alice.full_clean()


def test_the_database_maintains_updated_at(alice: UserProfile) -> None:
    sql("UPDATE users SET display_name = 'A', updated_at = '2001-01-01' WHERE id = %s", [alice.pk])
    (updated_at, now), *_ = sql("SELECT updated_at, now() FROM users WHERE id = %s", [alice.pk])
    assert updated_at == now


def test_objects_hides_soft_deleted_profiles(alice: UserProfile) -> None:
    alice.soft_delete()
    assert not UserProfile.objects.filter(pk=alice.pk).exists()
    assert UserProfile.all_objects.get(pk=alice.pk).is_active is False


def test_by_email_finds_a_profile_whatever_the_case(alice: UserProfile) -> None:
    assert UserProfile.objects.by_email("aLiCe@example.COM").get() == alice


@pytest.mark.parametrize(
    ("field", "value"),
    [("timezone", "Mars/Olympus"), ("timezone", "utc+2"), ("locale", "xx-YY"), ("locale", "en_GB")],
)
def test_validation_rejects_bad_timezone_and_locale(field: str, value: str) -> None:
    profile = UserProfile(cognito_sub="s", email="a@b.co", **{field: value})
    with pytest.raises(ValidationError) as excinfo:
        profile.full_clean()
    assert list(excinfo.value.message_dict) == [field]


def test_validation_accepts_iana_zones_and_tags() -> None:
    UserProfile(
        cognito_sub="s", email="a@b.co", timezone="Europe/Berlin", locale="pt-BR"
    ).full_clean()


def test_validation_reports_duplicates_as_form_errors(alice: UserProfile) -> None:
    with pytest.raises(ValidationError) as excinfo:
        UserProfile(cognito_sub="sub-alice", email="ALICE@example.com").full_clean()
    errors = excinfo.value.message_dict
    assert "cognito_sub" in errors
    assert errors["__all__"] == ["A live profile with this email already exists."]


def test_admin_search_can_use_the_trigram_indexes(alice: UserProfile) -> None:
    query = str(UserProfile.all_objects.filter(email__icontains="lice").query)
    sql("SET LOCAL enable_seqscan = off")
    plan = "\n".join(r[0] for r in sql("EXPLAIN " + query.replace("%lice%", "'%lice%'")))
    assert "users_email_trgm" in plan
