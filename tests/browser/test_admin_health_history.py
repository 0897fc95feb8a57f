"""In a real browser: the health page's charts over time, and one statement's chart."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Locator, Page, expect

from tests.dbops.health.historydata import QUERYID, make_history

# connections (with max_connections), cache hit ratio, database size, the five largest
# tables, dead tuples, replication lag
SERIES = [2, 1, 1, 5, 1, 1]


@pytest.fixture
def recorded(transactional_db: Any) -> None:
    make_history(timezone.now())


def assert_drawn(page: Page, series: list[int]) -> None:
    """Each chart has a drawn SVG of non-zero size and the expected number of series."""
    charts = page.locator("#history-charts figure.cg-chart")
    expect(charts).to_have_count(len(series))
    for i, count in enumerate(series):
        chart = charts.nth(i)
        box = chart.locator("svg").first.bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 50, (i, box)
        expect(chart.locator("g.cg-series")).to_have_count(count)
        assert chart.get_attribute("data-series") == str(count)


def tooltips(scope: Locator, text: str) -> list[str]:
    """The <title> tooltips in scope that contain text (titles are never visible)."""
    return [t for t in scope.locator("svg title").all_text_contents() if text in t]


def test_health_history_charts(admin_page: Page, recorded: None, screenshot: Any) -> None:
    page = admin_page
    page.goto("/admin/dbops/databasehealth/")
    expect(page.locator("#history-summary")).to_contain_text("24 snapshots in the last 24 hours")
    assert_drawn(page, SERIES)
    charts = page.locator("#history-charts figure.cg-chart")
    assert tooltips(charts.nth(0), "max_connections"), "no max_connections tooltip"
    assert any(t.endswith(": 100") for t in tooltips(charts.nth(0), "max_connections"))
    assert any(t.endswith(": 97.5%") for t in tooltips(charts.nth(1), "Cache hit ratio"))
    assert any(t.endswith(": 3.0 GB") for t in tooltips(charts.nth(2), "Database size"))
    assert any(t.endswith(": 7.0 MB") for t in tooltips(charts.nth(3), "public.t6"))
    assert any(t.endswith(": 1,234") for t in tooltips(charts.nth(4), "Dead tuples"))
    expect(charts.nth(3).locator(".cg-legend li")).to_have_count(5)
    expect(page.locator("#history-statements")).to_contain_text("household_id = $1")
    screenshot(page, "health-history")

    page.locator("#history-ranges").get_by_role("link", name="Last 7 days").click()
    expect(page).to_have_url(f"{page.url.split('?')[0]}?range=7d")
    expect(page.locator("#history-summary")).to_contain_text("73 snapshots in the last 7 days")
    expect(page.locator("#history-ranges strong")).to_have_text("Last 7 days")
    assert_drawn(page, SERIES)

    page.locator("#history-statements a.dbops-query-link").first.click()
    expect(page.locator("#query-text")).to_contain_text("household_id = $1")
    assert f"query={QUERYID}" in page.url and "range=7d" in page.url
    assert_drawn(page, [1, 1])
    chart = page.locator("#history-charts figure.cg-chart").first
    assert any(t.endswith(": 12 ms") for t in tooltips(chart, "Mean time"))
    screenshot(page, "health-query-history")
