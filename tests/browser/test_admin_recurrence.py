"""A task whose rule would flood the schedule, typed in the admin in Debian's Chromium."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from accounts.models import UserProfile
from chores.models import Household, Task

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def household() -> Household:
    ada = UserProfile.objects.create(cognito_sub="sub-ada", email="ada@example.com")
    return Household.objects.create_with_owner(ada, name="Analytical Engine House")


def test_a_flooding_rule_is_a_form_error_and_a_weekly_one_is_saved(
    admin_page: Page, household: Household, screenshot: Callable[[Page, str], Path]
) -> None:
    page = admin_page
    page.goto("/admin/chores/task/add/")
    page.fill("#id_household", str(household.pk))
    page.fill("#id_title", "Water the plants")
    page.fill("#id_recurrence", "FREQ=SECONDLY")
    page.fill("#id_starts_on", "2026-03-02")
    page.click("input[name=_save]")
    expect(page.locator(".errornote")).to_be_visible()
    errors = page.locator(".field-recurrence .errorlist")
    expect(errors).to_contain_text("FREQ=SECONDLY is too often for a chore")
    screenshot(page, "task-recurrence-error")
    assert not Task.objects.exists()

    page.fill("#id_recurrence", "FREQ=WEEKLY;BYDAY=WE,SA")
    page.click("input[name=_save]")
    expect(page.locator(".messagelist .success")).to_be_visible()
    assert Task.objects.get().recurrence == "FREQ=WEEKLY;BYDAY=WE,SA"
