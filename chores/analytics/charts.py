"""What the admin's analytics pages draw: the rollups' figures as SVG charts (D10).

The service page (`service_page`) and a household's last 12 weeks (`household_charts`);
the figures come from `chores.analytics.read`, the drawing from `dbops.adminsite.charts`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from django.utils.safestring import SafeString

from chores.analytics.read import (
    Freshness,
    TopHousehold,
    freshness,
    household_weeks,
    service_days,
    top_households,
    utc_today,
)
from chores.models import Household
from dbops.adminsite.charts import Series, bar_chart, line_chart

PERIODS = (30, 90, 365)
DEFAULT_PERIOD = 90
WEEKS = 12


def period(value: str | None) -> int:
    """The page's `days` parameter: 30, 90 or 365; anything else is the default, 90."""
    return int(value) if value in {str(p) for p in PERIODS} else DEFAULT_PERIOD


@dataclass(frozen=True)
class ServicePage:
    days: int
    freshness: Freshness
    charts: list[SafeString]
    month: date  # the first day of the month `top` covers
    top: list[TopHousehold]


def service_page(days: int, *, today: date | None = None) -> ServicePage:
    """The service-wide charts of the last `days` UTC days and this month's top households."""
    today = today or utc_today()
    rows = service_days(days, today=today)

    def series(name: str, attr: str) -> Series:
        return Series(name, [(r.day, getattr(r, attr)) for r in rows])

    charts = [
        line_chart(
            [
                series("Active users", "active_users"),
                series("Active households", "active_households"),
            ],
            title="Active users and households per day",
            y_label="Active",
        ),
        bar_chart(
            [series("Completions", "completions")],
            title="Completions per day",
            y_label="Completions",
        ),
        line_chart(
            [series("On-time rate", "on_time_rate")],
            title="Assignments done on time",
            y_label="On time",
            percent=True,
        ),
        line_chart(
            [series("New profiles", "new_profiles")],
            title="New profiles per day",
            y_label="Profiles",
        ),
        line_chart(
            [
                series("Notifications sent", "notifications_sent"),
                series("Notifications read", "notifications_read"),
            ],
            title="Notifications sent and read per day",
            y_label="Notifications",
        ),
    ]
    return ServicePage(
        days=days,
        freshness=freshness(),
        charts=charts,
        month=today.replace(day=1),
        top=top_households(today.year, today.month),
    )


@dataclass(frozen=True)
class HouseholdCharts:
    timezone: str
    first_week: date
    last_week: date
    charts: list[SafeString]
    refreshed: datetime | None  # when the rollups were last refreshed; None: never


def household_charts(household: Household, *, today: date | None = None) -> HouseholdCharts:
    """A household's last 12 weeks: completions and points per member, the overdue trend."""
    figures = household_weeks(household, WEEKS, today=today)
    weeks = figures.weeks

    def per_member(attr: str) -> list[Series]:
        return [
            Series(m.display_name, list(zip(weeks, getattr(m, attr), strict=True)))
            for m in figures.members
        ]

    charts = [
        bar_chart(
            per_member("completions"),
            title="Completions per member per week",
            y_label="Completions",
            x_label="Week starting",
        ),
        line_chart(
            per_member("points"),
            title="Points per member per week",
            y_label="Points",
            x_label="Week starting",
        ),
        line_chart(
            [Series("Overdue", list(zip(weeks, figures.overdue, strict=True)))],
            title="Assignments overdue per week",
            y_label="Overdue",
            x_label="Week starting",
        ),
    ]
    return HouseholdCharts(
        timezone=household.timezone,
        first_week=weeks[0],
        last_week=weeks[-1],
        charts=charts,
        refreshed=freshness().updated_at,
    )
