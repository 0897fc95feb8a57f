"""The analytics charts in Debian's Chromium: drawn, sized, coloured by theme, with known values."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.chores.analyticsdata import (
    MEMBERS,
    ZONE,
    Rollups,
    make_rollups,
    member_completions,
    service_completions,
)

pytestmark = pytest.mark.django_db(transaction=True)
LIGHT_FIRST_SERIES = "rgb(47, 111, 176)"  # charts.css --cg-0, light
DARK_FIRST_SERIES = "rgb(110, 168, 254)"  # charts.css --cg-0, dark


@pytest.fixture
def rollups() -> Rollups:
    return make_rollups()


def chart(page: Page, title: str) -> Locator:
    return page.locator("figure.cg-chart").filter(has=page.locator("figcaption", has_text=title))


def assert_drawn(figure: Locator) -> None:
    """The chart's SVG and every bar or line in it take room on the page."""
    box = figure.locator("svg").bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 100, box
    marks = figure.locator("g.cg-series path.cg-line, g.cg-series rect.cg-bar")
    assert marks.count() > 0
    sizes = [marks.nth(i).bounding_box() for i in range(min(marks.count(), 5))]
    assert any(s is not None and s["width"] > 0 and s["height"] > 0 for s in sizes), sizes


def first_series_colour(figure: Locator) -> str:
    mark = figure.locator("g.cg-series").first.locator("path.cg-line, rect.cg-bar").first
    return mark.evaluate(
        "e => { const s = getComputedStyle(e); return e.tagName === 'path' ? s.stroke : s.fill; }"
    )


def test_the_analytics_page_draws_its_charts_in_light_and_dark(
    admin_page: Page, rollups: Rollups, screenshot: Callable[[Page, str], Path]
) -> None:
    page = admin_page
    page.goto("/admin/chores/servicedailystats/")
    expect(page.locator("#analytics-freshness")).to_contain_text("Refreshed through")
    figures = page.locator("figure.cg-chart")
    expect(figures).to_have_count(5)
    for i in range(5):
        assert_drawn(figures.nth(i))
    active = chart(page, "Active users and households per day")
    expect(active.locator("g.cg-series")).to_have_count(2)
    expect(active.locator("ul.cg-legend li")).to_have_text(["Active users", "Active households"])
    completions = chart(page, "Completions per day")
    expect(completions.locator("g.cg-series")).to_have_count(1)
    newest = completions.locator(f'rect.cg-bar[data-x="{rollups.today}"]')
    expect(newest.locator("title")).to_have_text(
        f"Completions · {rollups.today}: {service_completions(0)}"
    )
    oldest = completions.locator("rect.cg-bar").first.bounding_box()
    tallest = newest.bounding_box()
    assert oldest and tallest and tallest["height"] > oldest["height"] > 0  # 198 over 20
    expect(chart(page, "Assignments done on time").locator("svg")).to_contain_text("100%")
    colours = [first_series_colour(figures.nth(i)) for i in range(2)]
    assert colours == [LIGHT_FIRST_SERIES, LIGHT_FIRST_SERIES]
    second = active.locator("g.cg-series").nth(1).locator("path.cg-line")
    assert second.evaluate("e => getComputedStyle(e).stroke") != LIGHT_FIRST_SERIES
    completions.locator("summary").click()
    expect(completions.locator("table tbody tr").last).to_contain_text(str(service_completions(0)))
    completions.locator("summary").click()
    screenshot(page, "analytics")

    page.emulate_media(color_scheme="dark")
    page.reload()
    expect(figures).to_have_count(5)
    assert first_series_colour(active) == DARK_FIRST_SERIES
    label = active.locator("g.cg-axis-y text").first
    assert label.evaluate("e => getComputedStyle(e).fill") == "rgb(208, 208, 208)"  # quiet, dark
    screenshot(page, "analytics-dark")

    page.goto("/admin/chores/servicedailystats/?days=30")
    expect(completions.locator("rect.cg-bar")).to_have_count(30)


def test_a_household_page_draws_its_last_12_weeks(
    admin_page: Page, rollups: Rollups, screenshot: Callable[[Page, str], Path]
) -> None:
    page = admin_page
    page.goto(f"/admin/chores/household/{rollups.household.pk}/change/")
    section = page.locator("#household-weeks")
    expect(section.locator("h2")).to_have_text("Last 12 weeks")
    expect(section).to_contain_text(ZONE)
    figures = section.locator("figure.cg-chart")
    expect(figures).to_have_count(3)
    for i in range(3):
        assert_drawn(figures.nth(i))
    per_member = chart(page, "Completions per member per week")
    expect(per_member.locator("g.cg-series")).to_have_count(len(MEMBERS))
    expect(per_member.locator("ul.cg-legend li")).to_have_text(list(MEMBERS))
    last = rollups.weeks[-1]
    bar = per_member.locator(f'g.cg-series[data-series-name="Ada Lovelace"] rect[data-x="{last}"]')
    expect(bar.locator("title")).to_have_text(f"Ada Lovelace · {last}: {member_completions(0, 11)}")
    points = chart(page, "Points per member per week")
    expect(points.locator("g.cg-series")).to_have_count(len(MEMBERS))
    expect(chart(page, "Assignments overdue per week").locator("circle.cg-point")).to_have_count(12)
    assert first_series_colour(per_member) == LIGHT_FIRST_SERIES
    section.scroll_into_view_if_needed()
    screenshot(page, "household-weeks")

    page.locator("button.theme-toggle").click()  # auto -> dark (the system is light)
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    assert first_series_colour(per_member) == DARK_FIRST_SERIES
