"""The admin's front page: each dashboard card with data, without, and when it cannot be read."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from accounts.models import UserProfile
from chores.models import (
    AnalyticsRefreshState,
    Assignment,
    HouseholdDailyStats,
    ServiceDailyStats,
)
from dbops.adminsite import dashboard, kit
from dbops.models import HealthSnapshot
from tests.adminstaff import client_for, staff_user
from tests.adminworld import World, make_world
from tests.migrationfiles import PROJECT_SQL, newest_version

pytestmark = pytest.mark.django_db


def card(client: Client, key: str) -> str | None:
    """The text of one card on the index (tags dropped, spaces collapsed), or None."""
    page = client.get("/admin/")
    assert page.status_code == 200
    found = re.search(
        rf'<section class="cg-card[^"]*" id="card-{key}".*?</section>',
        page.content.decode(),
        re.S,
    )
    if found is None:
        return None
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", found[0])).split())


def section(client: Client, key: str) -> str:
    page = client.get("/admin/").content.decode()
    found = re.search(rf'<section class="cg-card[^"]*" id="card-{key}".*?</section>', page, re.S)
    assert found, f"no {key} card"
    return found[0]


@pytest.fixture
def world() -> World:
    return make_world()


def test_each_card_links_to_its_page(admin_client: Client) -> None:
    page = admin_client.get("/admin/").content.decode()
    links = dict(re.findall(r'id="card-(\w+)-title"><a href="([^"]+)"', page))
    assert set(links) == {"profiles", "activity", "overdue", "migrations", "health"}
    for key, url in links.items():
        assert admin_client.get(unescape(url)).status_code == 200, (key, url)


def test_profiles_counts_all_and_the_last_7_days(admin_client: Client, world: World) -> None:
    UserProfile.objects.filter(pk=world.alice.pk).update(
        created_at=timezone.now() - timedelta(days=30)
    )
    assert card(admin_client, "profiles") == "Profiles 4 profiles 3 new in the last 7 days"


def test_profiles_of_a_large_table_are_estimated_and_bounded(
    admin_client: Client, pg_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kit, "EXACT_BELOW", 10)  # 30 profiles: too many to count exactly
    monkeypatch.setattr(dashboard, "BOUND", 5)
    name = settings.DATABASES["default"]["NAME"]
    with psycopg.connect(**pg_server.conninfo(name), autocommit=True) as owner:
        owner.execute(
            "INSERT INTO users (cognito_sub, email) SELECT 'bulk-' || n, 'bulk' || n || "
            "'@example.com' FROM generate_series(1, 30) n"
        )
        owner.execute("ANALYZE users")  # the statistics the estimate reads
    try:
        assert card(admin_client, "profiles") == (
            "Profiles about 30 profiles 5+ new in the last 7 days"
        )
    finally:
        with psycopg.connect(**pg_server.conninfo(name), autocommit=True) as owner:
            owner.execute("DELETE FROM users WHERE cognito_sub LIKE 'bulk-%'")
            owner.execute("ANALYZE users")


def test_profiles_without_any(admin_client: Client) -> None:
    assert card(admin_client, "profiles") == "Profiles 0 profiles 0 new in the last 7 days"


def test_overdue_counts_open_assignments_past_due(admin_client: Client, world: World) -> None:
    past = timezone.now() - timedelta(hours=2)
    for n in range(3):
        Assignment.objects.create(task=world.dishes, due_at=past - timedelta(days=n))
    Assignment.objects.filter(due_at=past).update(status="skipped")  # no longer open
    text = card(admin_client, "overdue")
    assert text == "Overdue assignments 2 open and past their due time"
    # The card's link lists the same two.
    url = unescape(re.search(r'href="([^"]+)"', section(admin_client, "overdue"))[1])
    listed = admin_client.get(url).content.decode()
    assert listed.count('class="field-due') == 2


def test_overdue_stops_counting_at_the_bound(
    admin_client: Client, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dashboard, "BOUND", 5)
    past = timezone.now() - timedelta(days=1)
    Assignment.objects.bulk_create(
        Assignment(task=world.dishes, household=world.millers, due_at=past - timedelta(hours=n))
        for n in range(6)
    )
    assert card(admin_client, "overdue") == "Overdue assignments 5+ open and past their due time"


def test_activity_says_to_refresh_before_any_rollup(admin_client: Client) -> None:
    text = card(admin_client, "activity")
    assert text == (
        "Active households this week — no rollups yet Run manage.py analytics refresh to fill them."
    )
    assert "<code>manage.py analytics refresh</code>" in section(admin_client, "activity")


def test_activity_from_the_rollups_with_30_day_sparklines(
    admin_client: Client, world: World
) -> None:
    today = datetime.now(UTC).date()
    for household, days_ago, completions in (
        (world.millers, 1, 4),
        (world.millers, 3, 2),
        (world.smiths, 6, 1),
        (world.smiths, 9, 5),  # before this week
    ):
        HouseholdDailyStats.objects.create(
            household=household, day=today - timedelta(days_ago), completions=completions
        )
    for n in range(30):
        ServiceDailyStats.objects.create(
            day=today - timedelta(days=n), completions=n + 1, active_users=2 * n
        )
    AnalyticsRefreshState.objects.create(rollup="daily", through_day=today)

    html = section(admin_client, "activity")
    text = card(admin_client, "activity")
    assert text is not None
    assert text.startswith(
        "Active households this week 2 households with a completion in the last 7 days "
        f"Rollups through {today:%Y-%m-%d} Completions per day, 30 days"
    )
    charts = re.findall(
        r'<figure class="cg-chart cg-sparkline" data-chart="sparkline".*?</figure>', html, re.S
    )
    assert len(charts) == 2
    completions, active = (re.findall(r'data-y="([^"]+)"', chart) for chart in charts)
    # Oldest day first: the day 29 days ago had 30 completions and 58 active users.
    assert [float(v) for v in completions] == [float(30 - n) for n in range(30)]
    assert [float(v) for v in active] == [float(2 * (29 - n)) for n in range(30)]
    # Each point is named by its day: the newest is today's.
    assert f"<title>Completions per day, 30 days · {today:%Y-%m-%d}: 1</title>" in charts[0]
    assert f'data-x="{today - timedelta(days=29):%Y-%m-%d}"' in charts[1]


def test_activity_names_rollups_that_fell_behind(admin_client: Client) -> None:
    through = datetime.now(UTC).date() - timedelta(days=5)
    AnalyticsRefreshState.objects.create(rollup="daily", through_day=through)
    assert (
        f"Rollups through {through:%Y-%m-%d} (5 days behind: run "
        "<code>manage.py analytics refresh</code>)"
    ) in section(admin_client, "activity")


def test_migrations_card_shows_the_schema_version(admin_client: Client) -> None:
    html = section(admin_client, "migrations")
    assert f'dbops-ok">{newest_version()}</span>' in html
    assert "0 pending, 0 problems" in html


def test_migrations_card_counts_a_pending_file(
    admin_client: Client, tmp_path: Path, settings: Any
) -> None:
    location = tmp_path / "migrations_sql"
    shutil.copytree(PROJECT_SQL, location)
    (location / f"V{newest_version() + 1}__add_a_column.sql").write_text("SELECT 1;\n")
    settings.SQL_MIGRATIONS = {**settings.SQL_MIGRATIONS, "LOCATION": location}
    html = section(admin_client, "migrations")
    assert f'dbops-warning">{newest_version()}</span>' in html
    assert "1 pending, 0 problems" in html


def test_health_without_history_checks_the_connections_live(admin_client: Client) -> None:
    text = card(admin_client, "health")
    assert text is not None
    assert text.startswith("Database health ok live check of the connections")
    assert re.search(r"\d+ of \d+ connections in use", text)
    assert "No history yet: manage.py dbhealth --record from cron keeps it." in text


def test_health_shows_the_latest_snapshot(admin_client: Client) -> None:
    common = {"max_connections": 100, "database_bytes": 1, "dead_tuples": 0}
    old = HealthSnapshot.objects.create(status=0, connections=5, cache_hit_ratio=0.99, **common)
    HealthSnapshot.objects.filter(pk=old.pk).update(taken_at=timezone.now() - timedelta(hours=2))
    HealthSnapshot.objects.create(status=1, connections=42, cache_hit_ratio=0.875, **common)
    text = card(admin_client, "health")
    assert text == (
        "Database health warning recorded 0 minutes ago 42 of 100 connections cache hit ratio 87.5%"
    )


def test_a_card_that_cannot_be_read_is_unavailable_and_the_page_renders(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    AnalyticsRefreshState.objects.create(rollup="daily", through_day=datetime.now(UTC).date())
    missing = dashboard.ACTIVE_HOUSEHOLDS_SQL.replace("household_daily_stats", "no_such_table")
    monkeypatch.setattr(dashboard, "ACTIVE_HOUSEHOLDS_SQL", missing)
    text = card(admin_client, "activity")
    assert text == "Active households this week unavailable could not be read (see the log)"
    assert 'class="cg-card cg-card-unavailable"' in section(admin_client, "activity")
    assert "dashboard card activity unavailable" in caplog.text
    assert "no_such_table" in caplog.text
    # The other cards still read (after the failed statement, in the same transaction).
    assert card(admin_client, "profiles") == "Profiles 0 profiles 0 new in the last 7 days"
    assert "unavailable" not in (card(admin_client, "health") or "")


def test_a_missing_migrations_folder_makes_that_card_unavailable(
    admin_client: Client, tmp_path: Path, settings: Any
) -> None:
    settings.SQL_MIGRATIONS = {**settings.SQL_MIGRATIONS, "LOCATION": tmp_path / "gone"}
    assert card(admin_client, "migrations") == (
        "Migrations unavailable could not be read (see the log)"
    )
    assert card(admin_client, "overdue") is not None


def test_cards_need_the_view_permission_of_what_they_show() -> None:
    client = client_for(staff_user("pat", "accounts.view_userprofile", "chores.view_assignment"))
    page = client.get("/admin/").content.decode()
    assert re.findall(r'id="card-(\w+)"', page) == ["profiles", "overdue"]
    every = client_for(staff_user("robin", *(spec.permission for spec in dashboard.CARDS)))
    page = every.get("/admin/").content.decode()
    assert re.findall(r'id="card-(\w+)"', page) == [spec.key for spec in dashboard.CARDS]
    nobody = client_for(staff_user("quinn"))
    page = nobody.get("/admin/").content.decode()
    assert 'id="dashboard"' not in page
    assert "You don\u2019t have permission to view or edit anything." in page
