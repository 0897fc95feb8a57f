"""In a real browser: the Content-Security-Policy, and signing in with a TOTP token."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings
from django_otp.oath import TOTP
from playwright.sync_api import Error, Page, expect

from dbops.signin.twofactor import add_device
from tests.browser.conftest import STAFF_PASSWORD, STAFF_USER

PAGES = (
    "/admin/",
    "/admin/accounts/userprofile/",
    "/admin/accounts/userprofile/add/",
    "/admin/chores/task/add/",
    "/admin/auth/user/",
    "/admin/dbops/databasehealth/",
    "/admin/sqlmigrations/flywayschemahistory/",
    "/admin/password_change/",
)


def test_admin_pages_send_the_policy_and_it_blocks_nothing_they_need(admin_page: Page) -> None:
    # The page fixture fails the test on any violation Chromium reports.
    page = admin_page
    for path in PAGES:
        response = page.goto(path)
        assert response is not None and response.status == 200, path
        assert "script-src 'self'" in response.headers["content-security-policy"]
        expect(page.locator("#content")).to_be_visible()


def test_an_inline_script_injected_into_an_admin_page_does_not_run(
    admin_page: Page, csp_blocked: list[str]
) -> None:
    page = admin_page
    with pytest.raises(Error):
        page.add_script_tag(content="document.body.dataset.injected = 'yes'")
    assert page.evaluate("document.body.dataset.injected") is None
    assert any("inline script" in report for report in csp_blocked), csp_blocked
    csp_blocked.clear()  # the one violation this test is about


@pytest.fixture
def two_factor() -> Any:
    with override_settings(ADMIN_REQUIRE_2FA=True):
        yield


def test_staff_sign_in_with_a_totp_token(page: Page, staff_user: Any, two_factor: None) -> None:
    device = add_device(staff_user, "phone")
    page.goto("/admin/")
    page.fill("#id_username", STAFF_USER)
    page.fill("#id_password", STAFF_PASSWORD)
    page.click("input[type=submit][value='Log in']")
    expect(page.locator(".errornote")).to_contain_text("Please enter your OTP token")
    page.fill("#id_otp_token", f"{TOTP(device.bin_key).token():06d}")
    page.click("input[type=submit][value='Log in']")
    expect(page.locator("#user-tools")).to_contain_text(STAFF_USER)
