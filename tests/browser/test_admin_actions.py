"""Admin actions by permission, and the audit trail they leave (issue 13.1, 13.4), in Chromium.

The live server commits each request, as production does: the audit actor is set by the
request's own transaction, not by a test's.
"""

from __future__ import annotations

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Permission, User
from playwright.sync_api import Page, expect

from accounts.models import UserProfile
from chores.models import AuditLog
from tests.browser.conftest import STAFF_PASSWORD, sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def staff(username: str, *codenames: str) -> User:
    user = User.objects.create_user(username, password=STAFF_PASSWORD, is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def profile() -> UserProfile:
    return UserProfile.objects.create(cognito_sub="sub-chloe", email="chloe@example.com")


def action_options(page: Page) -> list[str]:
    return page.locator("select[name=action] option").evaluate_all(
        "options => options.map(o => o.value)"
    )


def test_a_view_only_user_is_not_offered_the_soft_delete(page: Page, profile: UserProfile) -> None:
    staff("vera", "view_userprofile")
    sign_in(page, "vera")
    page.goto("/admin/accounts/userprofile/")
    expect(page.locator("#result_list")).to_contain_text("chloe@example.com")
    assert "soft_delete" not in action_options(page)
    assert "restore" not in action_options(page)


def test_a_soft_delete_is_audited_as_the_staff_member_who_clicked(
    page: Page, profile: UserProfile
) -> None:
    dora = staff("dora", "view_userprofile", "delete_userprofile")
    sign_in(page, "dora")
    page.goto("/admin/accounts/userprofile/")
    page.locator("#result_list input.action-select").first.check()
    page.select_option("select[name=action]", "soft_delete")
    page.click("button[name=index]")
    expect(page.locator(".messagelist .success")).to_contain_text("Soft-deleted 1 profiles.")
    profile.refresh_from_db()
    assert profile.deleted_at is not None
    row = AuditLog.objects.filter(table_name="users", row_key=str(profile.pk)).latest("id")
    assert (row.action, row.actor) == ("UPDATE", "staff:dora")
    entry = LogEntry.objects.get(user=dora, object_id=str(profile.pk))
    assert entry.action_flag == CHANGE
