"""Values the profile validators let through that PostgreSQL refused (found by hypothesis)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from accounts.models import UserProfile
from accounts.validators import preference_errors, validate_locale, validate_preferences


def test_a_locale_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(ValidationError, match="not a supported BCP 47 language tag"):
        validate_locale("en-GB\n")


def test_quiet_hours_with_a_trailing_newline_are_refused() -> None:
    with pytest.raises(ValidationError, match="quiet_hours must be null or"):
        validate_preferences({"quiet_hours": {"start": "22:00\n", "end": "07:00"}})


@pytest.mark.parametrize("channels", [[[]], [{"email": 1}], [None], ["email", ["push"]]])
def test_channels_that_are_not_names_are_an_error_not_a_crash(channels: list[Any]) -> None:
    assert preference_errors({"notification_channels": channels}) == [
        "notification_channels must be a list drawn from: email, push, sms, in_app"
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("email", ['"@"@example.com', '"a\\ b"@example.com'])
def test_an_email_django_accepts_but_the_database_refuses_is_a_form_error(
    admin_client: Any, email: str
) -> None:
    profile = UserProfile.objects.create(cognito_sub="sub-1", email="ada@example.com")
    url = reverse("admin:accounts_userprofile_change", args=[profile.pk])
    data = {
        "email": email,
        "timezone": "UTC",
        "locale": "en",
        "notification_channels": ["email"],
        "week_start": "monday",
        "is_active": "on",
    }
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert "an email address here has exactly one @ and no spaces" in response.content.decode()
    profile.refresh_from_db()
    assert profile.email == "ada@example.com"
