"""What the analytics pages read: the V12 rollups only, one or two indexed queries each.

Never `completions`: a page costs the same whatever the history's size. The reads go to the
reporting alias (the replica while it is fit, else the primary; dbops.connections.routers).
docs/query-patterns.md ("Analytics rollups") shows each query's plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.core.cache import cache

from chores.models import Household
from dbops.connections.routers import reporting_connection

SERVICE_COLUMNS = (
    "active_users",
    "active_households",
    "new_profiles",
    "completions",
    "points",
    "assignments_due",
    "done_on_time",
    "notifications_sent",
    "notifications_read",
)


def rate(done: int, due: int) -> float | None:
    """Return done / due, or None when nothing was due."""
    return done / due if due else None


@dataclass(frozen=True)
class ServiceDay:
    day: date
    active_users: int = 0
    active_households: int = 0
    new_profiles: int = 0
    completions: int = 0
    points: int = 0
    assignments_due: int = 0
    done_on_time: int = 0
    notifications_sent: int = 0
    notifications_read: int = 0
    refreshed_at: datetime | None = None  # None: no row (a day without activity, or not run)

    @property
    def on_time_rate(self) -> float | None:
        return rate(self.done_on_time, self.assignments_due)


@dataclass(frozen=True)
class MemberWeeks:
    member_id: int
    display_name: str
    completions: list[int]
    points: list[int]
    on_time_rate: list[float | None]


@dataclass(frozen=True)
class HouseholdWeeks:
    household_id: int
    weeks: list[date]  # Mondays of the household's time zone, oldest first
    members: list[MemberWeeks]
    completions: list[int]
    points: list[int]
    overdue: list[int]
    assignments_due: list[int]
    done_on_time: list[int]


@dataclass(frozen=True)
class TopHousehold:
    household_id: int
    name: str
    points: int
    completions: int


@dataclass(frozen=True)
class Freshness:
    watermark: datetime | None
    through_day: date | None
    updated_at: datetime | None


def utc_today() -> date:
    return datetime.now(UTC).date()


SERVICE_SQL = (
    f"SELECT day, {', '.join(SERVICE_COLUMNS)}, refreshed_at FROM service_daily_stats"
    " WHERE day >= %s AND day <= %s ORDER BY day"
)


def service_days(days: int = 90, *, today: date | None = None) -> list[ServiceDay]:
    """Return the service's figures per UTC day, oldest first, ending today; gaps are zeros."""
    last = today or utc_today()
    first = last - timedelta(days=days - 1)
    with reporting_connection().cursor() as cursor:
        cursor.execute(SERVICE_SQL, [first, last])
        rows = {row[0]: ServiceDay(*row) for row in cursor.fetchall()}
    return [rows.get(first + timedelta(n), ServiceDay(first + timedelta(n))) for n in range(days)]


HOUSEHOLD_SQL = """
SELECT date_trunc('week', day)::date, sum(completions)::bigint, sum(points)::bigint,
       sum(overdue)::bigint, sum(assignments_due)::bigint, sum(done_on_time)::bigint
FROM household_daily_stats
WHERE household_id = %s AND day >= %s AND day < %s
GROUP BY 1
"""

MEMBER_SQL = """
SELECT m.id, coalesce(nullif(u.display_name, ''), u.email), w.week, w.completions, w.points,
       w.due, w.on_time
FROM household_members m
JOIN users u ON u.id = m.user_id
LEFT JOIN (
    SELECT member_id, date_trunc('week', day)::date AS week,
           sum(completions)::bigint AS completions, sum(points)::bigint AS points,
           sum(assignments_due)::bigint AS due, sum(done_on_time)::bigint AS on_time
    FROM member_daily_stats
    WHERE household_id = %s AND day >= %s AND day < %s
    GROUP BY 1, 2
) w ON w.member_id = m.id
WHERE m.household_id = %s
ORDER BY m.joined_at, m.id
"""


def week_starts(today: date, weeks: int) -> list[date]:
    """Return the Mondays of the `weeks` weeks ending with the one holding `today`."""
    monday = today - timedelta(days=today.weekday())
    return [monday - timedelta(weeks=weeks - 1 - n) for n in range(weeks)]


def household_weeks(
    household: Household | int, weeks: int = 12, *, today: date | None = None
) -> HouseholdWeeks:
    """Return a household's and each current member's figures per week, oldest week first.

    Weeks start on Monday in the household's time zone; `today` defaults to today there.
    """
    if not isinstance(household, Household):
        household = Household.objects.using(reporting_connection().alias).get(pk=household)
    local_today = today or datetime.now(ZoneInfo(household.timezone)).date()
    starts = week_starts(local_today, weeks)
    index = {start: n for n, start in enumerate(starts)}
    first, end = starts[0], starts[-1] + timedelta(weeks=1)
    totals = {key: [0] * weeks for key in ("completions", "points", "overdue", "due", "on_time")}
    members: dict[int, tuple[str, list[int], list[int], list[int], list[int]]] = {}
    with reporting_connection().cursor() as cursor:
        cursor.execute(HOUSEHOLD_SQL, [household.pk, first, end])
        for week, completions, points, overdue, due, on_time in cursor.fetchall():
            n = index[week]
            for key, value in zip(
                ("completions", "points", "overdue", "due", "on_time"),
                (completions, points, overdue, due, on_time),
                strict=True,
            ):
                totals[key][n] = int(value)
        cursor.execute(MEMBER_SQL, [household.pk, first, end, household.pk])
        for member_id, name, week, completions, points, due, on_time in cursor.fetchall():
            entry = members.setdefault(
                member_id, (name, [0] * weeks, [0] * weeks, [0] * weeks, [0] * weeks)
            )
            if week is not None:
                n = index[week]
                entry[1][n], entry[2][n] = int(completions), int(points)
                entry[3][n], entry[4][n] = int(due), int(on_time)
    return HouseholdWeeks(
        household_id=household.pk,
        weeks=starts,
        members=[
            MemberWeeks(
                member_id=member_id,
                display_name=name,
                completions=completions,
                points=points,
                on_time_rate=[rate(d, t) for t, d in zip(due, on_time, strict=True)],
            )
            for member_id, (name, completions, points, due, on_time) in members.items()
        ],
        completions=totals["completions"],
        points=totals["points"],
        overdue=totals["overdue"],
        assignments_due=totals["due"],
        done_on_time=totals["on_time"],
    )


TOP_SQL = """
SELECT t.household_id, h.name, t.points, t.completions
FROM (
    SELECT household_id, sum(points)::bigint AS points, sum(completions)::bigint AS completions
    FROM household_daily_stats
    WHERE day >= %s AND day < %s
    GROUP BY household_id
    ORDER BY points DESC, household_id
    LIMIT %s
) t
JOIN households h ON h.id = t.household_id
ORDER BY t.points DESC, t.household_id
"""


TOP_CACHE_SECONDS = 3600  # the key changes with every refresh anyway


def month_days(year: int, month: int) -> tuple[date, date]:
    """Return [first day, first day of the next month) of a calendar month."""
    return date(year, month, 1), date(year + month // 12, month % 12 + 1, 1)


def top_households(
    year: int, month: int, limit: int = 10, *, cached: bool = True
) -> list[TopHousehold]:
    """Return the households with the most points in a month (of their own time zones).

    The month's rows are a household's every day (up to 600,000 index entries for 20,000
    households): the answer is kept in the cache until the next refresh changes the state.
    """
    key = None
    updated = freshness().updated_at if cached else None
    if updated is not None:  # before any refresh there is nothing worth keeping
        key = f"analytics:top:{year}-{month}:{limit}:{updated.isoformat()}"
        found = cache.get(key)
        if found is not None:
            return list(found)
    first, end = month_days(year, month)
    with reporting_connection().cursor() as cursor:
        cursor.execute(TOP_SQL, [first, end, limit])
        top = [TopHousehold(hid, name, int(p), int(c)) for hid, name, p, c in cursor.fetchall()]
    if key is not None:
        cache.set(key, top, TOP_CACHE_SECONDS)
    return top


def freshness() -> Freshness:
    """Return where the last refresh stopped (all None before the first one)."""
    with reporting_connection().cursor() as cursor:
        cursor.execute(
            "SELECT watermark, through_day, updated_at FROM analytics_refresh_state"
            " WHERE rollup = 'daily'"
        )
        row = cursor.fetchone()
    return Freshness(*row) if row else Freshness(None, None, None)
