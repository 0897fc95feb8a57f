"""The query patterns the app runs, each served by an index of V2-V9 (docs/query-patterns.md)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.db.models import QuerySet, Sum
from django.utils import timezone

from chores.models import Assignment, Completion, Household, HouseholdMember, Notification

WEEK_START_DAYS = {"monday": 0, "sunday": 6, "saturday": 5}


def week_bounds(today: date, tz: str, week_start: str = "monday") -> tuple[datetime, datetime]:
    """Return [start, end) of the week containing `today` in time zone `tz`."""
    first = today - timedelta(days=(today.weekday() - WEEK_START_DAYS[week_start]) % 7)
    zone = ZoneInfo(tz)
    start = datetime(first.year, first.month, first.day, tzinfo=zone)
    end = start + timedelta(days=7)
    return start, datetime(end.year, end.month, end.day, tzinfo=zone)


def open_assignments_between(
    member: HouseholdMember, start: datetime, end: datetime
) -> QuerySet[Assignment]:
    """A member's open assignments due in [start, end): index assignments_assignee_due."""
    return Assignment.objects.filter(
        assignee=member, status=Assignment.Status.OPEN, due_at__gte=start, due_at__lt=end
    ).order_by("due_at")


def open_assignments_this_week(member: HouseholdMember) -> QuerySet[Assignment]:
    household = member.household
    tz = household.timezone
    week_start = member.user.preferences.get("week_start", "monday")
    start, end = week_bounds(timezone.now().astimezone(ZoneInfo(tz)).date(), tz, week_start)
    return open_assignments_between(member, start, end)


def overdue_assignments(household: Household) -> QuerySet[Assignment]:
    """Open assignments past due: partial index assignments_household_open_due."""
    return Assignment.objects.filter(
        household=household, status=Assignment.Status.OPEN, due_at__lt=timezone.now()
    ).order_by("due_at")


def month_bounds(year: int, month: int, tz: str = "UTC") -> tuple[datetime, datetime]:
    """Return [start, end) of a month in `tz` (a UTC month is exactly one partition)."""
    zone = ZoneInfo(tz)
    start = datetime(year, month, 1, tzinfo=zone)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=zone)
    return start, end


def leaderboard(household: Household, year: int, month: int) -> QuerySet[Completion]:
    """Points per member for a month of the household's time zone (at most two partitions):
    index-only scan of completions_household_month."""
    start, end = month_bounds(year, month, household.timezone)
    return (
        Completion.objects.filter(
            household=household, completed_at__gte=start, completed_at__lt=end
        )
        .values("member")
        .annotate(points=Sum("points"))
        .order_by("-points", "member")
    )


def unread_notifications(user_id: object) -> QuerySet[Notification]:
    """A user's unread notifications, newest first: partial index notifications_unread."""
    return Notification.objects.filter(recipient_id=user_id, read_at__isnull=True).order_by(
        "-created_at"
    )
