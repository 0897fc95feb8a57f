"""Known rollup rows for the analytics pages' tests (server and browser).

The figures follow simple formulas so a test can name a value it expects to see: on the
service's day n days ago, completions = 20 + 2 * (89 - n) (so 198 today); a household of
three members in Europe/Berlin with, in week w of 12 (0 the oldest), member i completing
i + w + 1 chores for 10 points each and `w % 4` assignments overdue.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from accounts.models import UserProfile
from chores.analytics.read import week_starts
from chores.models import (
    AnalyticsRefreshState,
    Household,
    HouseholdDailyStats,
    HouseholdMember,
    MemberDailyStats,
    ServiceDailyStats,
)

SERVICE_DAYS = 90
ZONE = "Europe/Berlin"
MEMBERS = ("Ada Lovelace", 'Bob <b>"&</b>', "Charles Babbage")


def service_completions(days_ago: int) -> int:
    return 20 + 2 * (SERVICE_DAYS - 1 - days_ago)


def member_completions(member: int, week: int) -> int:
    return member + week + 1


@dataclass(frozen=True)
class Rollups:
    today: date  # the UTC day the service's rows end
    household: Household
    weeks: list[date]  # the household's 12 Mondays, oldest first


def make_service_days(today: date) -> None:
    rows = []
    for n in range(SERVICE_DAYS):
        rows.append(
            ServiceDailyStats(
                day=today - timedelta(days=n),
                active_users=40 + n % 7,
                active_households=12 + n % 3,
                new_profiles=n % 4,
                completions=service_completions(n),
                points=10 * service_completions(n),
                assignments_due=40,
                done_on_time=30 + n % 10,
                notifications_sent=25,
                notifications_read=15 + n % 5,
            )
        )
    ServiceDailyStats.objects.bulk_create(rows)
    AnalyticsRefreshState.objects.create(
        rollup="daily",
        watermark=datetime.combine(today, datetime.min.time(), tzinfo=UTC),
        through_day=today - timedelta(days=1),
    )


def make_household(name: str = "Analytical Engine House") -> Household:
    people = [
        UserProfile.objects.create(
            cognito_sub=f"sub-{i}", email=f"member{i}@example.com", display_name=member
        )
        for i, member in enumerate(MEMBERS)
    ]
    household = Household.objects.create_with_owner(people[0], name=name, timezone=ZONE)
    for person in people[1:]:
        household.members.create(user=person, role=HouseholdMember.Role.MEMBER)
    return household


def make_household_weeks(household: Household) -> list[date]:
    local_today = datetime.now(ZoneInfo(household.timezone)).date()
    weeks = week_starts(local_today, 12)
    members = list(household.members.order_by("joined_at", "id"))
    days, member_days = [], []
    for w, monday in enumerate(weeks):
        done = [member_completions(i, w) for i in range(len(members))]
        days.append(
            HouseholdDailyStats(
                household=household,
                day=monday,
                completions=sum(done),
                points=10 * sum(done),
                assignments_due=sum(done) + w % 4,
                done_on_time=sum(done),
                overdue=w % 4,
                active_members=len(members),
            )
        )
        member_days += [
            MemberDailyStats(
                member=member,
                household=household,
                day=monday,
                completions=done[i],
                points=10 * done[i],
                assignments_due=done[i],
                done_on_time=done[i],
            )
            for i, member in enumerate(members)
        ]
    HouseholdDailyStats.objects.bulk_create(days)
    MemberDailyStats.objects.bulk_create(member_days)
    return weeks


def make_rollups() -> Rollups:
    today = datetime.now(UTC).date()
    make_service_days(today)
    household = make_household()
    return Rollups(today=today, household=household, weeks=make_household_weeks(household))
