"""Models of the dbops app: the migration-system probe table and the health page's place."""

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
