"""Models of the dbops app: the migration-system probe table."""

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


class FlywaySchemaHistory(models.Model):
    """A read-only view of flyway_schema_history for the admin (the engine writes it)."""

    # managed=False: the table is created by the migration engine with Flyway's DDL, not
    # by this model; the schema drift check compares managed models only, and the model
    # state lives in dbops/migrations/admin_models_state.py so makemigrations sees no change.
    installed_rank = models.IntegerField(primary_key=True)
    version = models.CharField(max_length=50, null=True, blank=True)
    description = models.CharField(max_length=200)
    type = models.CharField(max_length=20)
    script = models.CharField(max_length=1000)
    checksum = models.IntegerField(null=True, blank=True)
    installed_by = models.CharField(max_length=100)
    installed_on = models.DateTimeField()
    execution_time = models.IntegerField(help_text="Milliseconds.")
    success = models.BooleanField()

    class Meta:
        managed = False
        db_table = "flyway_schema_history"
        ordering = ["-installed_rank"]
        verbose_name = "migration history row"
        verbose_name_plural = "migration history"
        default_permissions = ("view",)

    def __str__(self) -> str:
        return self.script


class DatabaseHealth(models.Model):
    """No table: gives the database-health admin page its place and permission."""

    class Meta:
        managed = False
        db_table = "dbops_database_health_no_table"  # never queried
        verbose_name = "database health"
        verbose_name_plural = "database health"
        default_permissions = ("view",)
