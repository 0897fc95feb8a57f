"""Usage rollups (V12): per household, per member and for the whole service, per day.

Written only by `manage.py analytics refresh` (chores/analytics/), read by the analytics
pages. A household's and a member's day is a date of the household's time zone; the
service's day is a UTC date. Every figure can be recomputed from the source tables, so a
rollup row is replaced whole, never edited.
"""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Now


def _count(comment: str) -> models.BigIntegerField:
    return models.BigIntegerField(default=0, db_default=0, db_comment=comment)


def _refreshed_at() -> models.DateTimeField:
    return models.DateTimeField(
        db_default=Now(), editable=False, db_comment="When `analytics refresh` wrote the row."
    )


class HouseholdDailyStats(models.Model):
    household = models.ForeignKey(
        "chores.Household",
        on_delete=models.CASCADE,
        related_name="daily_stats",
        db_index=False,  # the unique (household, day) index serves it
        db_comment="The household; deleting it deletes its rollups.",
    )
    day = models.DateField(db_comment="A date of the household's time zone.")
    completions = _count("Completions recorded for that day.")
    points = _count("Points of those completions.")
    assignments_due = _count("Assignments due that day, cancelled ones excepted.")
    done_on_time = _count("Of those, done no later than their due time.")
    overdue = _count("Of those, still open or missed after their due time.")
    active_members = _count("Members with at least one completion that day.")
    refreshed_at = _refreshed_at()

    class Meta:
        db_table = "household_daily_stats"
        db_table_comment = (
            "Per household per local day: completions, points, assignments due, done on time, "
            "overdue, active members; written by `manage.py analytics refresh`."
        )
        verbose_name = "household daily stats"
        verbose_name_plural = "household daily stats"
        constraints = [
            models.UniqueConstraint(fields=["household", "day"], name="household_daily_stats_uniq"),
            models.CheckConstraint(
                condition=Q(completions__gte=0, points__gte=0, active_members__gte=0),
                name="household_daily_stats_counts_positive",
            ),
            models.CheckConstraint(
                condition=Q(done_on_time__gte=0, overdue__gte=0)
                & Q(done_on_time__lte=F("assignments_due") - F("overdue")),
                name="household_daily_stats_assignments_consistent",
            ),
        ]
        indexes = [
            # The top households of a month and the per-day refresh (delete a day).
            models.Index(
                fields=["day", "household"],
                include=["points", "completions"],
                name="household_daily_stats_day",
            ),
        ]

    def __str__(self) -> str:
        return f"household {self.household_id} on {self.day}"


class MemberDailyStats(models.Model):
    member = models.ForeignKey(
        "chores.HouseholdMember",
        on_delete=models.CASCADE,
        related_name="daily_stats",
        db_index=False,  # the unique (member, day) index serves it
        db_comment="The member; deleting the membership deletes its rollups.",
    )
    household = models.ForeignKey(
        "chores.Household",
        on_delete=models.CASCADE,
        related_name="member_daily_stats",
        db_index=False,  # the (household, day) index serves it
        db_comment="The member's household, for the household page's per-member charts.",
    )
    day = models.DateField(db_comment="A date of the household's time zone.")
    completions = _count("Completions by the member that day.")
    points = _count("Points of those completions.")
    assignments_due = _count(
        "Assignments given to the member and due that day, cancelled ones excepted."
    )
    done_on_time = _count(
        "Of those, done no later than their due time (on-time rate: this / assignments_due)."
    )
    refreshed_at = _refreshed_at()

    class Meta:
        db_table = "member_daily_stats"
        db_table_comment = (
            "Per member per local day: completions, points, assignments due and done on time "
            "(the on-time rate); written by `manage.py analytics refresh`."
        )
        verbose_name = "member daily stats"
        verbose_name_plural = "member daily stats"
        constraints = [
            models.UniqueConstraint(fields=["member", "day"], name="member_daily_stats_uniq"),
            models.CheckConstraint(
                condition=Q(completions__gte=0, points__gte=0, done_on_time__gte=0)
                & Q(done_on_time__lte=F("assignments_due")),
                name="member_daily_stats_counts_consistent",
            ),
        ]
        indexes = [
            models.Index(
                fields=["household", "day"],
                include=["member", "points", "completions"],
                name="member_daily_household_day",
            ),
            models.Index(fields=["day"], name="member_daily_stats_day"),
        ]

    def __str__(self) -> str:
        return f"member {self.member_id} on {self.day}"


class ServiceDailyStats(models.Model):
    day = models.DateField(primary_key=True, db_comment="A UTC date.")
    active_users = _count("Profiles with a completion or a sign-in (last_seen_at) that day.")
    active_households = _count("Households with at least one completion that day.")
    new_profiles = _count("Profiles created that day.")
    completions = _count("Completions recorded for that day.")
    points = _count("Points of those completions.")
    assignments_due = _count("Assignments due that day, cancelled ones excepted.")
    done_on_time = _count("Of those, done no later than their due time.")
    notifications_sent = _count("Notifications created that day.")
    notifications_read = _count("Notifications read that day.")
    refreshed_at = _refreshed_at()

    class Meta:
        db_table = "service_daily_stats"
        db_table_comment = (
            "Per UTC day for the whole service: active users and households, new profiles, "
            "completions, on-time assignments, notifications sent and read; written by "
            "`manage.py analytics refresh`."
        )
        # The admin shows the analytics page in this model's place (chores.admin).
        verbose_name = "usage analytics"
        verbose_name_plural = "usage analytics"
        constraints = [
            models.CheckConstraint(
                condition=Q(done_on_time__lte=F("assignments_due")),
                name="service_daily_stats_on_time_consistent",
            ),
        ]

    def __str__(self) -> str:
        return str(self.day)


class AnalyticsRefreshState(models.Model):
    rollup = models.CharField(
        max_length=30, primary_key=True, db_comment="Which rollup: 'daily' for all three tables."
    )
    watermark = models.DateTimeField(
        null=True,
        blank=True,
        db_comment=(
            "Every source row recorded (created_at or updated_at) up to this moment is in the "
            "rollups; the next refresh re-reads the days of rows recorded after it."
        ),
    )
    through_day = models.DateField(
        null=True, blank=True, db_comment="The last UTC day refreshed in full."
    )
    updated_at = models.DateTimeField(
        db_default=Now(), editable=False, db_comment="When the state last changed."
    )

    class Meta:
        db_table = "analytics_refresh_state"
        db_table_comment = (
            "Where `manage.py analytics refresh` stopped: a watermark per rollup, committed with "
            "each day so an interrupted run continues."
        )

    def __str__(self) -> str:
        return self.rollup
