# Runs migrations_sql/V13__create_health_history_tables.sql; the state operations describe its tables.
import django.db.models.deletion
import django.db.models.functions.datetime
from django.db import migrations, models

from sqlmigrations.operations import RunSQLFile, SQLFileMigration


class Migration(SQLFileMigration):
    dependencies = [
        ("chores", "V12__create_analytics_tables"),
        ("dbops", "move_history_model_to_sqlmigrations"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                RunSQLFile(
                    script="V13__create_health_history_tables.sql",
                ),
            ],
            state_operations=[
                migrations.CreateModel(
                    name="HealthSnapshot",
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
                            "taken_at",
                            models.DateTimeField(
                                db_comment="When the figures were read.",
                                db_default=django.db.models.functions.datetime.Now(),
                                editable=False,
                            ),
                        ),
                        (
                            "status",
                            models.SmallIntegerField(
                                db_comment="Overall health then: 0 ok, 1 warning, 2 critical (as dbhealth exits)."
                            ),
                        ),
                        (
                            "connections",
                            models.BigIntegerField(
                                db_comment="Server connections in use (pg_stat_activity)."
                            ),
                        ),
                        (
                            "max_connections",
                            models.BigIntegerField(db_comment="The server's max_connections."),
                        ),
                        (
                            "cache_hit_ratio",
                            models.FloatField(
                                blank=True,
                                db_comment="Share of block reads served from memory, 0 to 1.",
                                null=True,
                            ),
                        ),
                        (
                            "database_bytes",
                            models.BigIntegerField(db_comment="pg_database_size of the database."),
                        ),
                        (
                            "dead_tuples",
                            models.BigIntegerField(
                                db_comment="Dead tuples summed over the database's tables (pg_stat_user_tables)."
                            ),
                        ),
                        (
                            "replication_lag_seconds",
                            models.FloatField(
                                blank=True,
                                db_comment="The largest replay lag of a replica; NULL without one.",
                                null=True,
                            ),
                        ),
                        (
                            "replication_lag_bytes",
                            models.BigIntegerField(
                                blank=True,
                                db_comment="The largest WAL lag of a replica; NULL without one.",
                                null=True,
                            ),
                        ),
                        (
                            "table_sizes",
                            models.JSONField(
                                blank=True,
                                db_comment='The largest tables then: {"table": total bytes, ...}.',
                                db_default={},
                                default=dict,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "health_snapshots",
                        "db_table_comment": "Database health over time, one row per `dbhealth --record` run; rows older than DB_HEALTH_HISTORY_DAYS are deleted by the next run.",
                        "indexes": [
                            models.Index(fields=["taken_at"], name="health_snapshots_taken_at")
                        ],
                        "constraints": [
                            models.CheckConstraint(
                                condition=models.Q(("status__gte", 0), ("status__lte", 2)),
                                name="health_snapshots_status",
                            ),
                            models.CheckConstraint(
                                condition=models.Q(
                                    ("cache_hit_ratio__isnull", True),
                                    models.Q(
                                        ("cache_hit_ratio__gte", 0), ("cache_hit_ratio__lte", 1)
                                    ),
                                    _connector="OR",
                                ),
                                name="health_snapshots_cache_hit_ratio",
                            ),
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="HealthStatementSample",
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
                            "queryid",
                            models.BigIntegerField(
                                db_comment="pg_stat_statements.queryid: the same statement over time."
                            ),
                        ),
                        (
                            "query",
                            models.TextField(
                                db_comment="The normalized statement ($1 placeholders, never parameter values), at most 1000 characters."
                            ),
                        ),
                        (
                            "calls",
                            models.BigIntegerField(
                                db_comment="Calls since the statistics were last reset."
                            ),
                        ),
                        (
                            "total_ms",
                            models.FloatField(
                                db_comment="Total execution time since the reset, in milliseconds."
                            ),
                        ),
                        (
                            "mean_ms",
                            models.FloatField(
                                db_comment="Mean execution time since the reset, in milliseconds."
                            ),
                        ),
                        (
                            "snapshot",
                            models.ForeignKey(
                                db_comment="The snapshot; deleting it (retention) deletes its samples.",
                                db_index=False,
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="statements",
                                to="dbops.healthsnapshot",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "health_statement_samples",
                        "db_table_comment": "The top statements by total time at each health snapshot; the difference between two snapshots gives a statement's mean time in between.",
                        "indexes": [
                            models.Index(
                                fields=["queryid", "snapshot"],
                                name="health_statement_samples_query",
                            )
                        ],
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("snapshot", "queryid"), name="health_statement_samples_uniq"
                            )
                        ],
                    },
                ),
            ],
        ),
    ]
