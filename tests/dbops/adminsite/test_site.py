"""Changelists read malformed query strings as invalid lookups, not server errors."""

from __future__ import annotations

from typing import Any

import pytest
from axes.models import AccessAttempt
from django.contrib import admin
from django.urls import reverse

from accounts.models import UserProfile
from dbops.adminsite.kit import plan_estimate
from dbops.adminsite.site import QueryStringChecksAdmin

pytestmark = pytest.mark.django_db


def changelist(name: str) -> str:
    return reverse(f"admin:{name}_changelist")


def assert_invalid_lookup(response: Any, url: str) -> None:
    assert response.status_code == 302, response.status_code
    assert response["Location"] == f"{url}?e=1"


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("chores_householdmember", {"role__exact": "\x00"}),
        ("chores_notification", {"kind__exact": "owner\x00"}),
        ("chores_auditlog", {"table_name": "\x00"}),
        ("chores_assignment", {"status__exact": "\x00", "q": "a@example.com"}),
        ("sqlmigrations_flywayschemahistory", {"type__exact": "\x00"}),
        ("axes_accessattempt", {"path_info": "/admin/\x00"}),
        ("accounts_userprofile", {"role\x00": "owner"}),
    ],
)
def test_a_nul_in_a_filter_is_an_invalid_lookup(
    admin_client: Any, name: str, params: dict[str, str]
) -> None:
    url = changelist(name)
    assert_invalid_lookup(admin_client.get(url, params), url)
    assert admin_client.get(url, {"e": "1"}).status_code == 200


def test_a_nul_in_the_search_is_ignored_with_a_message(admin_client: Any) -> None:
    page = admin_client.get(changelist("accounts_userprofile"), {"q": "ada\x00"})
    assert page.status_code == 200
    assert "Null characters are not allowed." in page.content.decode()


@pytest.mark.parametrize("month", [" ", "2024-13", "9999-12", "2024-1-1", "May 2024"])
def test_a_month_that_is_not_yyyy_mm_is_an_invalid_lookup(admin_client: Any, month: str) -> None:
    url = changelist("chores_completion")
    assert_invalid_lookup(admin_client.get(url, {"month": month}), url)


def test_a_valid_month_filters_the_completions(admin_client: Any) -> None:
    response = admin_client.get(changelist("chores_completion"), {"month": "0001-01"})
    assert response.status_code == 200


def test_the_date_hierarchy_past_the_year_9999_is_an_invalid_lookup(admin_client: Any) -> None:
    AccessAttempt.objects.create(
        user_agent="probe",
        ip_address="192.0.2.1",
        username="mallory",
        http_accept="*/*",
        path_info="/admin/login/",
        get_data="",
        post_data="",
        failures_since_start=1,
    )
    url = changelist("axes_accessattempt")
    year = {"attempt_time__year": "9999"}
    for params in (year, {**year, "attempt_time__month": "12"}):
        assert_invalid_lookup(admin_client.get(url, params), url)


def test_a_lookup_no_row_can_match_is_estimated_at_zero() -> None:
    assert plan_estimate(UserProfile.objects.none()) == 0


def test_every_registered_admin_checks_its_query_string() -> None:
    assert all(isinstance(a, QueryStringChecksAdmin) for a in admin.site._registry.values())
