"""The analytics pages' reads: figures from the rollups, gaps filled, weeks in local time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from chores.analytics import read
from chores.analytics.refresh import refresh
from tests.chores.analytics.history import add_completion, expected, local, make_history, upper_day

pytestmark = pytest.mark.django_db(transaction=True)


def test_before_any_refresh_everything_is_empty() -> None:
    assert read.freshness() == read.Freshness(None, None, None)
    days = read.service_days(3, today=date(2026, 3, 2))
    assert [d.day for d in days] == [date(2026, 2, 28), date(2026, 3, 1), date(2026, 3, 2)]
    assert all(d.completions == 0 and d.on_time_rate is None for d in days)
    assert read.top_households(2026, 3) == []


def test_service_days_are_the_rollup_oldest_first_with_zeros_between(no_margin: None) -> None:
    history = make_history(21)
    result = refresh()
    want = expected(history, upper_day())["service"]
    today = datetime.now(UTC).date()
    days = read.service_days(30, today=today)
    assert len(days) == 30 and days[-1].day == today and days[0].day == today - timedelta(29)
    for d in days:
        figures = (
            d.active_users,
            d.active_households,
            d.new_profiles,
            d.completions,
            d.points,
            d.assignments_due,
            d.done_on_time,
            d.notifications_sent,
            d.notifications_read,
        )
        assert figures == want.get(d.day, (0,) * 9), d.day
        assert d.on_time_rate == (d.done_on_time / d.assignments_due if d.assignments_due else None)
    assert read.freshness().watermark == result.watermark


def test_household_weeks_start_on_monday_in_the_households_zone(no_margin: None) -> None:
    history = make_history(22, households=2, days=40)
    refresh()
    want = expected(history, upper_day())
    for household, zone in history.zones.items():
        today = datetime.now(UTC).astimezone(ZoneInfo(zone)).date()
        weeks = read.household_weeks(household, 6)
        assert weeks.weeks[-1] <= today < weeks.weeks[-1] + timedelta(7)
        assert all(w.weekday() == 0 for w in weeks.weeks)
        assert [b - a for a, b in zip(weeks.weeks, weeks.weeks[1:], strict=False)] == [
            timedelta(7)
        ] * 5
        for n, start in enumerate(weeks.weeks):
            days = [(household, start + timedelta(k)) for k in range(7)]
            rows = [want["household"].get(key, (0,) * 6) for key in days]
            assert weeks.completions[n] == sum(r[0] for r in rows)
            assert weeks.points[n] == sum(r[1] for r in rows)
            assert weeks.overdue[n] == sum(r[4] for r in rows)
        members = [m for m, (hh, _) in history.members.items() if hh == household]
        assert [m.member_id for m in weeks.members] == sorted(members)
        for m in weeks.members:
            assert m.display_name.startswith("User ")
            for n, start in enumerate(weeks.weeks):
                rows = [want["member"].get((m.member_id, start + timedelta(k))) for k in range(7)]
                rows = [r for r in rows if r]
                assert m.completions[n] == sum(r[1] for r in rows)
                assert m.points[n] == sum(r[2] for r in rows)
                due, done = sum(r[3] for r in rows), sum(r[4] for r in rows)
                assert m.on_time_rate[n] == (done / due if due else None)


def test_top_households_of_a_month_by_points(no_margin: None) -> None:
    history = make_history(23, households=5)
    refresh()
    want = expected(history, upper_day())["household"]
    today = datetime.now(UTC).date()
    totals: dict[int, list[int]] = {}
    for (household, day), row in want.items():
        if (day.year, day.month) == (today.year, today.month):
            totals.setdefault(household, [0, 0])
            totals[household][0] += row[1]
            totals[household][1] += row[0]
    ranked = sorted(totals.items(), key=lambda item: (-item[1][0], item[0]))[:3]
    top = read.top_households(today.year, today.month, limit=3)
    assert [(t.household_id, t.points, t.completions) for t in top] == [
        (h, p, c) for h, (p, c) in ranked
    ]
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM households WHERE id = %s", [top[0].household_id])
        assert top[0].name == cursor.fetchone()[0]


def test_top_households_are_kept_until_the_next_refresh(no_margin: None) -> None:
    history = make_history(24, households=3)
    refresh()
    household, zone = list(history.zones.items())[-1]
    moment = history.now - timedelta(hours=2)
    month = local(moment, zone)
    first = read.top_households(month.year, month.month)
    assert first == read.top_households(month.year, month.month, cached=False)
    with connection.cursor() as cursor:
        add_completion(
            cursor, history, household=household, member=None, completed_at=moment, points=1000
        )
    assert read.top_households(month.year, month.month) == first  # the rollups did not change
    refresh()
    top = read.top_households(month.year, month.month)
    assert top[0].household_id == household and top[0].points >= 1000
    assert top == read.top_households(month.year, month.month, cached=False)
