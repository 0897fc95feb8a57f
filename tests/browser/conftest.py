"""Browser tests: Playwright drives Debian's Chromium (headless) against a live server.

`live_server` (pytest-django) runs the site in a thread on the real PostgreSQL test
database; `browser` is one Chromium for the session; `page` is a fresh browser context per
test; `admin_page` is a page signed in as a staff superuser; `screenshot(page, name)` saves
test-artifacts/screenshots/<name>.png and, with UPDATE_DOC_SCREENSHOTS=1, refreshes
docs/screenshots/<name>.png as well.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "screenshots"
DOC_SCREENSHOTS = REPO / "docs" / "screenshots"
STAFF_USER = "ada"
STAFF_PASSWORD = "correct-horse-battery-42"  # a test-only password
VIEWPORT = {"width": 1280, "height": 860}


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    if not Path(path).exists():
        pytest.fail(
            f"Chromium is not at {path}: install Debian's (`apt-get install chromium`, as "
            ".ci/run does) or set CHROMIUM_PATH to a Chromium binary."
        )
    return path


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    # Playwright's sync API keeps an asyncio loop in this thread; Django then refuses ORM
    # calls from it (SynchronousOnlyOperation) unless told that this is safe here.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    args = ["--no-sandbox"] if os.geteuid() == 0 else []  # Chromium's sandbox refuses root
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=args
        )
        yield chromium
        chromium.close()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def csp_blocked() -> list[str]:
    """What the Content-Security-Policy blocked on `page` (a test that expects it clears it)."""
    return []


@pytest.fixture
def page(browser: Browser, live_server: Any, csp_blocked: list[str]) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT, base_url=live_server.url)
    context.set_default_timeout(15_000)
    # The admin's navigation sidebar starts closed: wider pages and screenshots.
    context.add_init_script("localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")
    page = context.new_page()
    # Chromium reports on the console whatever the Content-Security-Policy blocks: every
    # browser test also checks that the policy blocks nothing the admin needs.
    page.on(
        "console",
        lambda message: (
            csp_blocked.append(f"{page.url}: {message.text}")
            if "Content Security Policy" in message.text
            else None
        ),
    )
    yield page
    context.close()
    assert not csp_blocked, "the Content-Security-Policy blocked:\n" + "\n".join(csp_blocked)


@pytest.fixture
def staff_user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_superuser(
        STAFF_USER, f"{STAFF_USER}@example.com", STAFF_PASSWORD
    )


def sign_in(page: Page, username: str = STAFF_USER, password: str = STAFF_PASSWORD) -> None:
    """Sign in through the admin's login form, as a person would."""
    page.goto("/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    expect(page.locator("#site-name")).to_be_visible()
    expect(page.locator("#user-tools")).to_contain_text(username)


@pytest.fixture
def admin_page(page: Page, staff_user: Any) -> Page:
    sign_in(page)
    return page


@pytest.fixture
def screenshot() -> Callable[[Page, str], Path]:
    update_docs = os.environ.get("UPDATE_DOC_SCREENSHOTS", "").lower() in {"1", "true", "yes"}

    def take(page: Page, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        if update_docs:
            DOC_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, DOC_SCREENSHOTS / path.name)
        return path

    return take
