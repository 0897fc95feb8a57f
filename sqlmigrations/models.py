"""Models of the migration engine: the schema history, read-only, for the admin."""

from __future__ import annotations

from django.db import models


class FlywaySchemaHistory(models.Model):
    """A read-only view of the history table for the admin (the engine writes it)."""

    # managed=False: the engine creates the table with Flyway's DDL, not this model; the
    # schema drift check compares managed models only, and the model state lives in
    # sqlmigrations/migrations/history_model_state.py so makemigrations sees no change.
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
