"""Django's migration executor, with a one-round-trip path for SQL file wrappers (D1)."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from sqlmigrations import django_internals
from sqlmigrations.django_internals import MigrationExecutor
from sqlmigrations.operations import SQLFileMigration
from sqlmigrations.wrappers import shared_disk_loader


class SQLMigrationExecutor(MigrationExecutor):
    """Apply a plain wrapper as one transaction in one round trip; anything else as Django.

    Django's executor spends four round trips on every migration (BEGIN, the operation,
    the django_migrations row, COMMIT) plus a schema editor and an ORM insert around them.
    For a wrapper of one transactional file, the file, its flyway_schema_history row and
    its django_migrations row go to the server as one query string, which PostgreSQL runs
    as one implicit transaction: all of it is committed, or none of it.
    """

    def __init__(self, connection: Any, progress_callback: Any = None) -> None:
        # The system checks of this run read the migrations from disk already: reuse them.
        django_internals.init_executor(
            self, connection, progress_callback, shared=shared_disk_loader()
        )

    def apply_migration(
        self, state: Any, migration: Any, fake: bool = False, fake_initial: bool = False
    ) -> Any:
        if (
            fake
            or fake_initial
            or not isinstance(migration, SQLFileMigration)
            or not migration.applies_in_one_trip(self.connection)
        ):
            return super().apply_migration(state, migration, fake=fake, fake_initial=fake_initial)
        if self.progress_callback:
            self.progress_callback("apply_start", migration, fake)
        self.recorder.ensure_schema()
        record = django_internals.record_applied_sql(
            self.connection, migration.app_label, migration.name, timezone.now()
        )
        state = migration.apply_in_one_trip(state, self.connection, record)
        if self.progress_callback:
            self.progress_callback("apply_success", migration, fake)
        return state
