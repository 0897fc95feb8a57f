"""Models of the dbops app: the migration probe table, the health page and health history."""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Now


class MigrationTest(models.Model):
    """A row per check proves that migrations ran on this database (V1)."""

    name = models.CharField(max_length=100, db_comment="What wrote the row (e.g. a deploy check).")
    created_at = models.DateTimeField(db_default=Now(), db_comment="When the row was written.")

    class Meta:
        db_table = "migration_test"
        db_table_comment = "Probe for the migration system: proves migrations run on this database."

    def __str__(self) -> str:
        return self.name


class DatabaseHealth(models.Model):
    """No table: gives the database-health admin page its place and permission."""

    class Meta:
        managed = False
        db_table = "dbops_database_health_no_table"  # never queried
        verbose_name = "database health"
        verbose_name_plural = "database health"
        default_permissions = ("view",)


class HealthSnapshot(models.Model):
    """The health figures at one moment, stored by `manage.py dbhealth --record` (V13)."""

    taken_at = models.DateTimeField(
        db_default=Now(), editable=False, db_comment="When the figures were read."
    )
    status = models.SmallIntegerField(
        db_comment="Overall health then: 0 ok, 1 warning, 2 critical (as dbhealth exits)."
    )
    connections = models.BigIntegerField(db_comment="Server connections in use (pg_stat_activity).")
    max_connections = models.BigIntegerField(db_comment="The server's max_connections.")
    cache_hit_ratio = models.FloatField(
        null=True, blank=True, db_comment="Share of block reads served from memory, 0 to 1."
    )
    database_bytes = models.BigIntegerField(db_comment="pg_database_size of the database.")
    dead_tuples = models.BigIntegerField(
        db_comment="Dead tuples summed over the database's tables (pg_stat_user_tables)."
    )
    replication_lag_seconds = models.FloatField(
        null=True, blank=True, db_comment="The largest replay lag of a replica; NULL without one."
    )
    replication_lag_bytes = models.BigIntegerField(
        null=True, blank=True, db_comment="The largest WAL lag of a replica; NULL without one."
    )
    table_sizes = models.JSONField(
        default=dict,
        blank=True,
        db_default={},
        db_comment='The largest tables then: {"table": total bytes, ...}.',
    )

    class Meta:
        db_table = "health_snapshots"
        db_table_comment = (
            "Database health over time, one row per `dbhealth --record` run; rows older than "
            "DB_HEALTH_HISTORY_DAYS are deleted by the next run."
        )
        indexes = [models.Index(fields=["taken_at"], name="health_snapshots_taken_at")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__gte=0, status__lte=2), name="health_snapshots_status"
            ),
            models.CheckConstraint(
                condition=models.Q(cache_hit_ratio__isnull=True)
                | models.Q(cache_hit_ratio__gte=0, cache_hit_ratio__lte=1),
                name="health_snapshots_cache_hit_ratio",
            ),
        ]

    def __str__(self) -> str:
        return f"health at {self.taken_at:%Y-%m-%d %H:%M}"


class HealthStatementSample(models.Model):
    """One of the slowest statements at a snapshot, from pg_stat_statements (V13)."""

    snapshot = models.ForeignKey(
        HealthSnapshot,
        on_delete=models.CASCADE,
        related_name="statements",
        db_index=False,  # the unique (snapshot, queryid) index serves it
        db_comment="The snapshot; deleting it (retention) deletes its samples.",
    )
    queryid = models.BigIntegerField(
        db_comment="pg_stat_statements.queryid: the same statement over time."
    )
    query = models.TextField(
        db_comment=(
            "The normalized statement ($1 placeholders, never parameter values), "
            "at most 1000 characters."
        )
    )
    calls = models.BigIntegerField(db_comment="Calls since the statistics were last reset.")
    total_ms = models.FloatField(
        db_comment="Total execution time since the reset, in milliseconds."
    )
    mean_ms = models.FloatField(db_comment="Mean execution time since the reset, in milliseconds.")

    class Meta:
        db_table = "health_statement_samples"
        db_table_comment = (
            "The top statements by total time at each health snapshot; the difference between "
            "two snapshots gives a statement's mean time in between."
        )
        constraints = [
            models.UniqueConstraint(
                fields=["snapshot", "queryid"], name="health_statement_samples_uniq"
            ),
        ]
        indexes = [
            models.Index(fields=["queryid", "snapshot"], name="health_statement_samples_query"),
        ]

    def __str__(self) -> str:
        return f"statement {self.queryid}"
