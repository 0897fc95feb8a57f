"""In a real browser: the admin's front page, its cards and sparklines, the sections' order."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from chores.models import AnalyticsRefreshState, HouseholdDailyStats, ServiceDailyStats
from dbops.adminsite.site import SECURITY_NAME
from tests.adminworld import make_world

CARDS = ["profiles", "activity", "overdue", "migrations", "health"]


@pytest.fixture
def usage(transactional_db: Any) -> None:
    """Rollups refreshed through today: two active households, 30 days of service figures."""
    world = make_world()
    today = datetime.now(UTC).date()
    HouseholdDailyStats.objects.create(household=world.millers, day=today, completions=3)
    HouseholdDailyStats.objects.create(
        household=world.smiths, day=today - timedelta(days=2), completions=1
    )
    ServiceDailyStats.objects.bulk_create(
        ServiceDailyStats(
            day=today - timedelta(days=n),
            completions=round(60 + 15 * math.sin(n / 2) - n),  # weekly ups and downs, growing
            active_users=round(25 + 6 * math.cos(n / 3) - n / 3),
        )
        for n in range(30)
    )
    AnalyticsRefreshState.objects.create(rollup="daily", through_day=today)


def test_the_index_shows_the_dashboard_then_the_sections(
    admin_page: Page, usage: None, screenshot: Any
) -> None:
    page = admin_page
    page.goto("/admin/")
    expect(page).to_have_title("Dashboard | Chore Garden admin")
    expect(page.locator("#site-name")).to_have_text("Chore Garden admin")
    cards = page.locator("#dashboard section.cg-card")
    expect(cards).to_have_count(len(CARDS))
    assert [c.get_attribute("id") for c in cards.all()] == [f"card-{k}" for k in CARDS]
    for key in CARDS:
        box = page.locator(f"#card-{key}").bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 40, (key, box)
    expect(page.locator("#card-activity .cg-card-figure")).to_have_text("2")
    expect(page.locator("#card-health .dbops-badge")).to_have_text("ok")

    sparklines = page.locator("#card-activity figure.cg-sparkline svg")
    expect(sparklines).to_have_count(2)
    for i in range(2):
        box = sparklines.nth(i).bounding_box()
        assert box is not None and box["width"] > 50 and box["height"] > 10, (i, box)
        path = sparklines.nth(i).locator("path.cg-line").bounding_box()
        assert path is not None and path["width"] > 50, (i, path)  # the line was drawn
        expect(sparklines.nth(i).locator("circle")).to_have_count(30)

    sections = page.locator("#content-main caption a.section").all_inner_texts()
    assert [s.casefold() for s in sections] == [  # the theme may set them in capitals
        "profiles",
        "households and chores",
        "database operations",
        "sql migrations",
        SECURITY_NAME.casefold(),
    ], sections
    screenshot(page, "admin-index")

    page.locator("#card-overdue h2 a").click()
    expect(page.locator("h1")).to_have_text("Select assignment to change")
