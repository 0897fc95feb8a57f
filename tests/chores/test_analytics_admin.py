"""The usage analytics page and a household's last 12 weeks in the admin (D10)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.urls import NoReverseMatch, reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chores.models import Household
from tests.adminstaff import client_for, staff_user
from tests.chores.analyticsdata import (
    MEMBERS,
    ZONE,
    Rollups,
    make_household,
    make_rollups,
    member_completions,
    service_completions,
)

pytestmark = pytest.mark.django_db
PAGE = "admin:chores_servicedailystats_changelist"
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def rollups() -> Rollups:
    return make_rollups()


@pytest.fixture
def admin_client(django_user_model: Any) -> Client:
    return client_for(django_user_model.objects.create_superuser("ada", "ada@example.com", "x"))


def figures(html: str) -> list[ET.Element]:
    """Each chart on the page, parsed as XML (a chart is one well-formed <figure>)."""
    return [
        ET.fromstring(f) for f in re.findall(r'<figure class="cg-chart.*?</figure>', html, re.S)
    ]


def chart(html: str, title: str) -> ET.Element:
    return next(f for f in figures(html) if f.findtext("figcaption") == title)


def tooltips(figure: ET.Element) -> list[str]:
    return [t.text or "" for t in figure.iter(f"{SVG}title")]


def test_the_page_draws_the_service_trends_from_the_rollups(
    admin_client: Client, rollups: Rollups
) -> None:
    response = admin_client.get(reverse(PAGE))
    assert response.status_code == 200
    html = response.content.decode()
    assert [f.get("data-chart") for f in figures(html)] == ["line", "bar", "line", "line", "line"]
    active = chart(html, "Active users and households per day")
    assert active.get("data-series") == "2"
    assert [
        g.get("data-series-name") for g in active.iter(f"{SVG}g") if g.get("data-series-name")
    ] == [
        "Active users",
        "Active households",
    ]
    completions = chart(html, "Completions per day")
    assert len(list(completions.iter(f"{SVG}rect"))) == 90
    assert f"Completions · {rollups.today}: {service_completions(0)}" in tooltips(completions)
    on_time = chart(html, "Assignments done on time")
    assert f"On-time rate · {rollups.today}: 75%" in tooltips(on_time)  # 30 of 40
    assert "Refreshed through" in html and str(rollups.today - timedelta(days=1)) in html
    assert "dbops/charts" in html and "style=" not in html


def test_the_top_households_of_the_month_link_to_their_pages(
    admin_client: Client, rollups: Rollups
) -> None:
    html = admin_client.get(reverse(PAGE)).content.decode()
    link = reverse("admin:chores_household_change", args=[rollups.household.pk])
    in_month = [w for w in rollups.weeks if w.month == rollups.today.month]
    if in_month:  # the household's Mondays that fall in this month count
        assert f'<a href="{link}">Analytical Engine House</a>' in html
    else:
        assert "No completions recorded this month yet." in html


def test_before_any_refresh_the_page_says_how_to_refresh(admin_client: Client) -> None:
    response = admin_client.get(reverse(PAGE))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="analytics-empty"' in html
    assert "manage.py analytics refresh" in html
    assert not figures(html)
    assert "No completions recorded this month yet." in html


@pytest.mark.parametrize(("days", "bars"), [("30", 30), ("365", 365), ("7", 90), ("", 90)])
def test_the_days_switch_shows_30_90_or_365_days(
    admin_client: Client, rollups: Rollups, days: str, bars: int
) -> None:
    html = admin_client.get(reverse(PAGE), {"days": days}).content.decode()
    completions = chart(html, "Completions per day")
    assert len(list(completions.iter(f"{SVG}rect"))) == bars  # days without rows are zeros
    rows = completions.findall(".//details/table/tbody/tr")
    assert len(rows) == bars
    assert f"<strong>{bars} days</strong>" in html


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    query=st.lists(
        st.tuples(
            st.sampled_from(["days", "day", "o", "q", "p", "_changelist_filters"]) | st.text(),
            st.text() | st.sampled_from(["30", "90", "365", "-1", "1e9", "\uff19\uff10"]),
        ),
        max_size=4,
    )
)
def test_no_query_string_breaks_the_page(
    admin_client: Client, query: list[tuple[str, str]]
) -> None:
    response = admin_client.get(f"{reverse(PAGE)}?{urlencode(query)}")
    assert response.status_code == 200
    days = dict(query).get("days")
    shown = int(days) if days in {"30", "90", "365"} else 90
    assert f"<strong>{shown} days</strong>" in response.content.decode()


def test_staff_without_the_view_permission_get_403() -> None:
    client = client_for(staff_user("bob", "chores.view_household"))
    assert client.get(reverse(PAGE)).status_code == 403


def test_the_view_permission_opens_the_page_and_nothing_can_be_changed(rollups: Rollups) -> None:
    carol = staff_user("carol", "chores.view_servicedailystats")
    client = client_for(carol)
    assert client.get(reverse(PAGE)).status_code == 200
    index = client.get(reverse("admin:app_list", args=["chores"])).content.decode()
    assert f'href="{reverse(PAGE)}"' in index and "Usage analytics" in index
    base = reverse(PAGE)
    for path in ("add/", f"{rollups.today}/change/", f"{rollups.today}/delete/"):
        assert client.get(base + path).status_code == 404
    for name in ("add", "change", "delete", "history"):
        with pytest.raises(NoReverseMatch):
            reverse(f"admin:chores_servicedailystats_{name}", args=[] if name == "add" else [1])


def test_anonymous_visitors_are_sent_to_sign_in() -> None:
    response = Client().get(reverse(PAGE))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_a_household_page_shows_its_last_12_weeks_per_member(
    admin_client: Client, rollups: Rollups
) -> None:
    household = rollups.household
    html = admin_client.get(
        reverse("admin:chores_household_change", args=[household.pk])
    ).content.decode()
    assert 'id="household-weeks"' in html and ZONE in html
    per_member = chart(html, "Completions per member per week")
    assert per_member.get("data-chart") == "bar"
    assert per_member.get("data-series") == str(len(MEMBERS))
    names = [
        g.get("data-series-name") for g in per_member.iter(f"{SVG}g") if g.get("data-series-name")
    ]
    assert names == list(MEMBERS)  # escaped on the page, read back intact
    assert 'Bob <b>"&</b>' not in html
    last = rollups.weeks[-1]
    assert f"Ada Lovelace · {last}: {member_completions(0, 11)}" in tooltips(per_member)
    points = chart(html, "Points per member per week")
    assert points.get("data-series") == str(len(MEMBERS))
    assert f"Charles Babbage · {last}: {10 * member_completions(2, 11)}" in tooltips(points)
    overdue = chart(html, "Assignments overdue per week")
    assert [c.get("data-y") for c in overdue.iter(f"{SVG}circle")] == [
        str(w % 4) for w in range(12)
    ]


def test_a_household_without_rollups_shows_empty_charts_and_the_add_page_none(
    admin_client: Client,
) -> None:
    household = make_household("Quiet House")
    html = admin_client.get(
        reverse("admin:chores_household_change", args=[household.pk])
    ).content.decode()
    assert 'id="household-weeks"' in html
    assert "No analytics refresh has run yet" in html
    assert html.count('class="cg-chart-empty"') == 0  # zeros are drawn: a quiet household
    add = admin_client.get(reverse("admin:chores_household_add")).content.decode()
    assert 'id="household-weeks"' not in add and "cg-chart" not in add


def test_an_unknown_household_is_still_a_redirect(admin_client: Client) -> None:
    missing = (Household.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 99
    response = admin_client.get(reverse("admin:chores_household_change", args=[missing]))
    assert response.status_code == 302


def test_the_superuser_sees_the_page_in_the_app_index(admin_client: Client) -> None:
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert f'href="{reverse(PAGE)}"' in html and "Usage analytics" in html
