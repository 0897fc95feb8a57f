"""Signal receivers of the dbops app (connected in DbopsConfig.ready)."""

from __future__ import annotations

from typing import Any

from django.db import connections
from django.db.migrations.recorder import MigrationRecorder

from dbops.roles.privileges import protect_history_table


def protect_migration_history(sender: Any, using: str, **kwargs: Any) -> None:
    """After `migrate`: Django's history table is read-only for everyone but its owner.

    `migrate` creates django_migrations as the owner, whose default privileges give the
    application role CRUD on it; an application that can delete a history row makes
    the next `migrate` fail with InconsistentMigrationHistory.
    """
    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    connection.ensure_connection()
    protect_history_table(connection.connection, MigrationRecorder.Migration._meta.db_table)
