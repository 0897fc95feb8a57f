# Runs migrations_sql/V12__create_analytics_tables.sql; the state operations describe its tables.
import django.db.models.deletion
import django.db.models.expressions
import django.db.models.functions.datetime
from django.db import migrations, models

from sqlmigrations.operations import RunSQLFile, SQLFileMigration


class Migration(SQLFileMigration):
    dependencies = [
        ("accounts", "V11__index_users_created_at"),
        ("chores", "V10__create_audit_log_table"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                RunSQLFile(
                    script="V12__create_analytics_tables.sql",
                ),
            ],
            state_operations=[
                migrations.CreateModel(
                    name="AnalyticsRefreshState",
                    fields=[
                        (
                            "rollup",
                            models.CharField(
                                db_comment="Which rollup: 'daily' for all three tables.",
                                max_length=30,
                                primary_key=True,
                                serialize=False,
                            ),
                        ),
                        (
                            "watermark",
                            models.DateTimeField(
                                blank=True,
                                db_comment="Every source row recorded (created_at or updated_at) up to this moment is in the rollups; the next refresh re-reads the days of rows recorded after it.",
                                null=True,
                            ),
                        ),
                        (
                            "through_day",
                            models.DateField(
                                blank=True,
                                db_comment="The last UTC day refreshed in full.",
                                null=True,
                            ),
                        ),
                        (
                            "updated_at",
                            models.DateTimeField(
                                db_comment="When the state last changed.",
                                db_default=django.db.models.functions.datetime.Now(),
                                editable=False,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "analytics_refresh_state",
                        "db_table_comment": "Where `manage.py analytics refresh` stopped: a watermark per rollup, committed with each day so an interrupted run continues.",
                    },
                ),
                migrations.CreateModel(
                    name="ServiceDailyStats",
                    fields=[
                        (
                            "day",
                            models.DateField(
                                db_comment="A UTC date.", primary_key=True, serialize=False
                            ),
                        ),
                        (
                            "active_users",
                            models.BigIntegerField(
                                db_comment="Profiles with a completion or a sign-in (last_seen_at) that day.",
                                db_default=0,
                                default=0,
                            ),
                        ),
                        (
                            "active_households",
                            models.BigIntegerField(
                                db_comment="Households with at least one completion that day.",
                                db_default=0,
                                default=0,
                            ),
                        ),
                        (
                            "new_profiles",
                            models.BigIntegerField(
                                db_comment="Profiles created that day.", db_default=0, default=0
                            ),
                        ),
                        (
                            "completions",
                            models.BigIntegerField(
                                db_comment="Completions recorded for that day.",
                                db_default=0,
                                default=0,
                            ),
                        ),
                        (
                            "points",
                            models.BigIntegerField(
                                db_comment="Points of those completions.", db_default=0, default=0
                            ),
                        ),
                        (
                            "assignments_due",
                            models.BigIntegerField(
                                db_comment="Assignments due that day, cancelled ones excepted.",
                                db_default=0,
                                default=0,
                            ),
                        ),
                        (
                            "done_on_time",
                            models.BigIntegerField(
                                db_comment="Of those, done no later than their due time.",
                                db_default=0,
                                default=0,
                            ),
                        ),
                        (
                            "notifications_sent",
                            models.BigIntegerField(
                                db_comment="Notifications created that day.",
                                db_default=0,
                                default=0,
                            ),
                        ),
                        (
                            "notifications_read",
                            models.BigIntegerField(
                                db_comment="Notifications read that day.", db_default=0, default=0
                            ),
                        ),
                        (
                            "refreshed_at",
                            models.DateTimeField(
                                db_comment="When `analytics refresh` wrote the row.",
                                db_default=django.db.models.functions.datetime.Now(),
                                editable=False,
                            ),
                        ),
                    ],
                    options={
                        "verbose_name": "usage analytics",
                        "verbose_name_plural": "usage analytics",
                        "db_table": "service_daily_stats",
                        "db_table_comment": "Per UTC day for the whole service: active users and households, new profiles, completions, on-time assignments, notifications sent and read; written by `manage.py analytics refresh`.",
                        "constraints": [
                            models.CheckConstraint(
                                condition=models.Q(
                                    ("done_on_time__lte", models.F("assignments_due"))
                                ),
                                name="service_daily_stats_on_time_consistent",
                            )
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="HouseholdDailyStats",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        (
                            "day",
                            models.DateField(db_comment="A date of the household's time zone."),
                        ),
                        (
                            "completions",
                            models.BigIntegerField(
                                db_comment="Completions recorded for that day.",
                                db_default=0,
                                default=0,
                            ),
                        ),
                        (
                            "points",
                            models.BigIntegerField(
                                db_comment="Points of those completions.", db_default=0, default=0
                            ),
                        ),
                        (
                            "assignments_due",
                            models.BigIntegerField(
                                db_comment="Assignments due that day, cancelled ones excepted.",
                                db_default=0,
                                default=0,
                            ),
                        ),
                        (
                            "done_on_time",
                            models.BigIntegerField(
                                db_comment="Of those, done no later than their due time.",
                                db_default=0,
                                default=0,
                            ),
                        ),
                        (
                            "overdue",
                            models.BigIntegerField(
                                db_comment="Of those, still open or missed after their due time.",
                                db_default=0,
                                default=0,
                            ),
                        ),
                        (
                            "active_members",
                            models.BigIntegerField(
                                db_comment="Members with at least one completion that day.",
                                db_default=0,
                                default=0,
                            ),
                        ),
                        (
                            "refreshed_at",
                            models.DateTimeField(
                                db_comment="When `analytics refresh` wrote the row.",
                                db_default=django.db.models.functions.datetime.Now(),
                                editable=False,
                            ),
                        ),
                        (
                            "household",
                            models.ForeignKey(
                                db_comment="The household; deleting it deletes its rollups.",
                                db_index=False,
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="daily_stats",
                                to="chores.household",
                            ),
                        ),
                    ],
                    options={
                        "verbose_name": "household daily stats",
                        "verbose_name_plural": "household daily stats",
                        "db_table": "household_daily_stats",
                        "db_table_comment": "Per household per local day: completions, points, assignments due, done on time, overdue, active members; written by `manage.py analytics refresh`.",
                        "indexes": [
                            models.Index(
                                fields=["day", "household"],
                                include=("points", "completions"),
                                name="household_daily_stats_day",
                            )
                        ],
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("household", "day"), name="household_daily_stats_uniq"
                            ),
                            models.CheckConstraint(
                                condition=models.Q(
                                    ("active_members__gte", 0),
                                    ("completions__gte", 0),
                                    ("points__gte", 0),
                                ),
                                name="household_daily_stats_counts_positive",
                            ),
                            models.CheckConstraint(
                                condition=models.Q(
                                    ("done_on_time__gte", 0),
                                    ("overdue__gte", 0),
                                    (
                                        "done_on_time__lte",
                                        django.db.models.expressions.CombinedExpression(
                                            models.F("assignments_due"), "-", models.F("overdue")
                                        ),
                                    ),
                                ),
                                name="household_daily_stats_assignments_consistent",
                            ),
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="MemberDailyStats",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        (
                            "day",
                            models.DateField(db_comment="A date of the household's time zone."),
                        ),
                        (
                            "completions",
                            models.BigIntegerField(
                                db_comment="Completions by the member that day.",
                                db_default=0,
                                default=0,
                            ),
                        ),
                        (
                            "points",
                            models.BigIntegerField(
                                db_comment="Points of those completions.", db_default=0, default=0
                            ),
                        ),
                        (
                            "assignments_due",
                            models.BigIntegerField(
                                db_comment="Assignments given to the member and due that day, cancelled ones excepted.",
                                db_default=0,
                                default=0,
                            ),
                        ),
                        (
                            "done_on_time",
                            models.BigIntegerField(
                                db_comment="Of those, done no later than their due time (on-time rate: this / assignments_due).",
                                db_default=0,
                                default=0,
                            ),
                        ),
                        (
                            "refreshed_at",
                            models.DateTimeField(
                                db_comment="When `analytics refresh` wrote the row.",
                                db_default=django.db.models.functions.datetime.Now(),
                                editable=False,
                            ),
                        ),
                        (
                            "household",
                            models.ForeignKey(
                                db_comment="The member's household, for the household page's per-member charts.",
                                db_index=False,
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="member_daily_stats",
                                to="chores.household",
                            ),
                        ),
                        (
                            "member",
                            models.ForeignKey(
                                db_comment="The member; deleting the membership deletes its rollups.",
                                db_index=False,
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="daily_stats",
                                to="chores.householdmember",
                            ),
                        ),
                    ],
                    options={
                        "verbose_name": "member daily stats",
                        "verbose_name_plural": "member daily stats",
                        "db_table": "member_daily_stats",
                        "db_table_comment": "Per member per local day: completions, points, assignments due and done on time (the on-time rate); written by `manage.py analytics refresh`.",
                        "indexes": [
                            models.Index(
                                fields=["household", "day"],
                                include=("member", "points", "completions"),
                                name="member_daily_household_day",
                            ),
                            models.Index(fields=["day"], name="member_daily_stats_day"),
                        ],
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("member", "day"), name="member_daily_stats_uniq"
                            ),
                            models.CheckConstraint(
                                condition=models.Q(
                                    ("completions__gte", 0),
                                    ("done_on_time__gte", 0),
                                    ("points__gte", 0),
                                    ("done_on_time__lte", models.F("assignments_due")),
                                ),
                                name="member_daily_stats_counts_consistent",
                            ),
                        ],
                    },
                ),
            ],
        ),
    ]
