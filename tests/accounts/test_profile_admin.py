"""The user-profile admin (issue 6.1, 6.5): server-side behaviour on real PostgreSQL."""

from __future__ import annotations

import re
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import UserProfile
from chores.models import Household, HouseholdMember
from dbops.adminsite.kit import EXACT_BELOW

pytestmark = pytest.mark.django_db
CHANGELIST = reverse("admin:accounts_userprofile_changelist")


def make(n: int, **fields: Any) -> UserProfile:
    return UserProfile.objects.create(
        cognito_sub=f"sub-{n}", email=f"user{n}@example.com", **fields
    )


def form_data(profile: UserProfile, **changes: Any) -> dict[str, Any]:
    data = {
        "email": profile.email,
        "email_verified": "on" if profile.email_verified else "",
        "display_name": profile.display_name,
        "timezone": profile.timezone,
        "locale": profile.locale,
        "notification_channels": ["email"],
        "quiet_hours_start": "",
        "quiet_hours_end": "",
        "week_start": "monday",
        "is_active": "on",
        "last_seen_at_0": "",
        "last_seen_at_1": "",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v != "" or k.startswith(("quiet", "last", "display"))}


def test_search_finds_profiles_by_any_part_of_email_name_or_sub(admin_client: Any) -> None:
    make(1, display_name="Ada Lovelace")
    make(2, display_name="Grace Hopper")
    page = admin_client.get(CHANGELIST, {"q": "lovel"}).content.decode()
    assert "user1@example.com" in page and "user2@example.com" not in page
    page = admin_client.get(CHANGELIST, {"q": "SUB-2"}).content.decode()
    assert "user2@example.com" in page and "user1@example.com" not in page


def test_changelist_queries_do_not_grow_with_the_page(admin_client: Any) -> None:
    for n in range(3):
        make(n)
    with CaptureQueriesContext(connection) as few:
        assert admin_client.get(CHANGELIST).status_code == 200
    for n in range(3, 40):
        make(n)
    with CaptureQueriesContext(connection) as many:
        assert admin_client.get(CHANGELIST).status_code == 200
    assert len(many) == len(few)


def test_changelist_lists_each_profiles_households_in_queries_that_do_not_grow(
    admin_client: Any,
) -> None:
    owner, member = make(1), make(2)
    make(3)
    home = Household.objects.create_with_owner(owner, name="The Millers", timezone="UTC")
    away = Household.objects.create_with_owner(member, name="Beach House", timezone="UTC")
    HouseholdMember.objects.create(household=home, user=member, role="member")
    with CaptureQueriesContext(connection) as few:
        page = admin_client.get(CHANGELIST).content.decode()
    cells = dict(
        re.findall(r'(user\d@example\.com)</a></th>.*?field-household_names">([^<]*)<', page)
    )
    assert cells["user1@example.com"] == "The Millers"
    assert sorted(cells["user2@example.com"].split(", ")) == ["Beach House", "The Millers"]
    assert cells["user3@example.com"] == "—"
    for n in range(4, 20):
        HouseholdMember.objects.create(household=away, user=make(n), role="member")
    with CaptureQueriesContext(connection) as many:
        assert "Beach House" in admin_client.get(CHANGELIST).content.decode()
    assert len(many) == len(few)


def test_changelist_reads_only_the_columns_it_shows(admin_client: Any) -> None:
    make(1, display_name="Ada Lovelace")
    with CaptureQueriesContext(connection) as queries:
        page = admin_client.get(CHANGELIST).content.decode()
    assert "Ada Lovelace" in page and "user1@example.com" in page
    (rows,) = [q["sql"] for q in queries if 'FROM "users"' in q["sql"] and "ORDER BY" in q["sql"]]
    assert '"users"."email"' in rows
    assert '"users"."preferences"' not in rows and '"users"."avatar"' not in rows


def test_a_large_table_is_never_counted_exactly(admin_client: Any, pg_server: Any) -> None:
    name = settings.DATABASES["default"]["NAME"]
    with psycopg.connect(**pg_server.conninfo(name), autocommit=True) as owner:
        owner.execute(
            "INSERT INTO users (cognito_sub, email) SELECT 'bulk-' || n, 'bulk' || n || "
            "'@example.com' FROM generate_series(1, %s) n",
            [EXACT_BELOW + 5000],
        )
        owner.execute("ANALYZE users")
    try:
        with CaptureQueriesContext(connection) as queries:
            page = admin_client.get(CHANGELIST).content.decode()
        counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
        assert counts == []
        assert "about " in page
    finally:
        with psycopg.connect(**pg_server.conninfo(name), autocommit=True) as owner:
            owner.execute("DELETE FROM users WHERE cognito_sub LIKE 'bulk-%'")
            owner.execute("ANALYZE users")


def test_a_wrong_preference_is_a_form_error_and_a_right_one_is_saved(admin_client: Any) -> None:
    profile = make(1)
    url = reverse("admin:accounts_userprofile_change", args=[profile.pk])
    response = admin_client.post(
        url, form_data(profile, quiet_hours_start="25:00", quiet_hours_end="07:00")
    )
    assert response.status_code == 200  # the form again, with the error
    assert "25:00 is not a time: use 24-hour HH:MM" in response.content.decode()
    profile.refresh_from_db()
    assert profile.preferences["quiet_hours"] is None

    response = admin_client.post(
        url,
        form_data(
            profile,
            quiet_hours_start="22:00",
            quiet_hours_end="07:00",
            notification_channels=["push", "sms"],
            week_start="sunday",
        ),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    profile.refresh_from_db()
    assert profile.preferences == {
        "notification_channels": ["push", "sms"],
        "quiet_hours": {"start": "22:00", "end": "07:00"},
        "week_start": "sunday",
    }


def test_one_end_of_quiet_hours_alone_is_an_error(admin_client: Any) -> None:
    profile = make(1)
    url = reverse("admin:accounts_userprofile_change", args=[profile.pk])
    response = admin_client.post(url, form_data(profile, quiet_hours_start="22:00"))
    assert "Give both ends of the quiet hours" in response.content.decode()


def test_cognito_sub_is_read_only_after_creation(admin_client: Any) -> None:
    profile = make(1)
    url = reverse("admin:accounts_userprofile_change", args=[profile.pk])
    page = admin_client.get(url).content.decode()
    assert 'name="cognito_sub"' not in page and "sub-1" in page
    admin_client.post(url, {**form_data(profile), "cognito_sub": "hijacked"})
    profile.refresh_from_db()
    assert profile.cognito_sub == "sub-1"
    add_page = admin_client.get(reverse("admin:accounts_userprofile_add")).content.decode()
    assert 'name="cognito_sub"' in add_page


def test_soft_delete_and_restore_actions(admin_client: Any) -> None:
    profile = make(1)
    admin_client.post(CHANGELIST, {"action": "soft_delete", "_selected_action": [str(profile.pk)]})
    profile.refresh_from_db()
    assert profile.deleted_at is not None and profile.is_active is False
    assert not UserProfile.objects.filter(pk=profile.pk).exists()  # hidden from the app

    admin_client.post(CHANGELIST, {"action": "restore", "_selected_action": [str(profile.pk)]})
    profile.refresh_from_db()
    assert profile.deleted_at is None and profile.is_active is True


def test_restore_refuses_when_another_live_profile_took_the_email(admin_client: Any) -> None:
    profile = make(1)
    profile.soft_delete()
    UserProfile.objects.create(cognito_sub="sub-new", email="USER1@example.com")
    response = admin_client.post(
        CHANGELIST,
        {"action": "restore", "_selected_action": [str(profile.pk)]},
        follow=True,
    )
    assert "another live profile has this email" in response.content.decode()
    profile.refresh_from_db()
    assert profile.deleted_at is not None
