"""Browser tests of the profiles and households admin (issue 6.6), in Debian's Chromium."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from accounts.models import UserProfile
from chores.models import Household, HouseholdMember

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def household() -> Household:
    ada = UserProfile.objects.create(
        cognito_sub="sub-ada", email="ada@example.com", display_name="Ada Lovelace"
    )
    grace = UserProfile.objects.create(
        cognito_sub="sub-grace", email="grace@example.com", display_name="Grace Hopper"
    )
    home = Household.objects.create_with_owner(ada, name="Analytical Engine House")
    HouseholdMember.objects.create(household=home, user=grace, role="member")
    return home


def test_search_a_profile_and_edit_its_preferences(
    admin_page: Page, household: Household, screenshot: Callable[[Page, str], Path]
) -> None:
    page = admin_page
    page.goto("/admin/accounts/userprofile/")
    page.fill("#searchbar", "lovel")
    page.press("#searchbar", "Enter")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("ada@example.com")
    expect(rows.first).to_contain_text("Analytical Engine House")  # households column
    screenshot(page, "profiles-search")

    rows.first.locator("th a").click()
    expect(page.locator("h1")).to_contain_text("Change user profile")
    expect(page.locator("input[name=cognito_sub]")).to_have_count(0)  # read-only

    # A wrong value: a form error, nothing saved.
    page.fill("#id_quiet_hours_start", "25:00")
    page.fill("#id_quiet_hours_end", "07:00")
    page.click("input[name=_save]")
    expect(page.locator(".errornote")).to_be_visible()
    expect(page.locator("body")).to_contain_text("25:00 is not a time: use 24-hour HH:MM")
    screenshot(page, "profile-preferences-error")

    # The right value: saved, back on the list with a success message.
    page.fill("#id_quiet_hours_start", "22:00")
    page.check("input[name=notification_channels][value=sms]")
    page.select_option("#id_week_start", "sunday")
    page.click("input[name=_save]")
    expect(page.locator(".messagelist .success")).to_be_visible()
    profile = UserProfile.objects.get(cognito_sub="sub-ada")
    assert profile.preferences["quiet_hours"] == {"start": "22:00", "end": "07:00"}
    assert "sms" in profile.preferences["notification_channels"]
    assert profile.preferences["week_start"] == "sunday"


def test_open_a_household_with_its_members(
    admin_page: Page, household: Household, screenshot: Callable[[Page, str], Path]
) -> None:
    page = admin_page
    page.goto("/admin/chores/household/")
    page.get_by_role("link", name="Analytical Engine House").click()
    inline = page.locator("#members-group")
    expect(inline).to_be_visible()
    expect(inline.locator("tr.form-row.has_original")).to_have_count(2)
    expect(inline).to_contain_text("owner")
    screenshot(page, "household-members")


def test_large_table_counts_are_marked_approximate_only_when_estimated(
    admin_page: Page, household: Household, screenshot: Callable[[Page, str], Path]
) -> None:
    page = admin_page
    page.goto("/admin/chores/completion/")
    expect(page.locator(".paginator")).to_contain_text("0 completions")
    expect(page.locator(".paginator")).not_to_contain_text("about")
    page.goto("/admin/accounts/userprofile/")
    expect(page.locator(".paginator")).to_contain_text("2 user profiles")
    screenshot(page, "profiles-list")


def test_an_avatar_upload_must_be_a_real_image(
    admin_page: Page,
    household: Household,
    screenshot: Callable[[Page, str], Path],
    settings: object,
    tmp_path: Path,
) -> None:
    import io

    from PIL import Image

    settings.MEDIA_ROOT = tmp_path  # type: ignore[attr-defined]
    ada = UserProfile.objects.get(cognito_sub="sub-ada")
    page = admin_page
    page.goto(f"/admin/accounts/userprofile/{ada.pk}/change/")
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    page.set_input_files(
        "#id_avatar", files=[{"name": "ada.png", "mimeType": "image/png", "buffer": svg}]
    )
    page.click("input[name=_save]")
    expect(page.locator(".errornote")).to_be_visible()
    expect(page.locator(".field-avatar .errorlist")).to_contain_text(
        "The file is not a PNG, JPEG, WebP or GIF image"
    )
    screenshot(page, "profile-avatar-refused")
    assert list(tmp_path.rglob("*.*")) == []

    png = io.BytesIO()
    Image.new("RGB", (32, 32), (40, 160, 60)).save(png, format="PNG")
    page.set_input_files(
        "#id_avatar",
        files=[{"name": "ada.png", "mimeType": "image/png", "buffer": png.getvalue()}],
    )
    page.click("input[name=_save]")
    expect(page.locator(".messagelist .success")).to_be_visible()
    ada.refresh_from_db()
    assert ada.avatar.name.startswith("avatars/") and ada.avatar.name.endswith(".png")
    assert (tmp_path / ada.avatar.name).read_bytes() == png.getvalue()
