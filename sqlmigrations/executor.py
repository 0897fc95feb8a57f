"""Django's migration executor, with a one-round-trip path for SQL file wrappers (D1)."""

from __future__ import annotations

from typing import Any

from django.apps import apps as global_apps
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.state import ModelState
from django.utils import timezone
from psycopg import sql

from sqlmigrations.operations import DeferredApps, SQLFileMigration


class SQLMigrationExecutor(MigrationExecutor):
    """Apply a plain wrapper as one transaction in one round trip; anything else as Django.

    Django's executor spends four round trips on every migration (BEGIN, the operation,
    the django_migrations row, COMMIT) plus a schema editor and an ORM insert around them.
    For a wrapper of one transactional file, the file, its flyway_schema_history row and
    its django_migrations row go to the server as one query string, which PostgreSQL runs
    as one implicit transaction: all of it is committed, or none of it.
    """

    _record_head: str | None = None

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
        state = migration.apply_in_one_trip(state, self.connection, self.record_sql(migration))
        if self.progress_callback:
            self.progress_callback("apply_success", migration, fake)
        return state

    def record_sql(self, migration: Any) -> str:
        """Return the INSERT that MigrationRecorder.record_applied would run."""
        self.connection.ensure_connection()
        conn = self.connection.connection
        if self._record_head is None:
            # Composed once: only the values change from wrapper to wrapper.
            table = sql.Identifier(self.recorder.Migration._meta.db_table)
            self._record_head = (
                sql.SQL("INSERT INTO {} (app, name, applied) VALUES (")
                .format(table)
                .as_string(conn)
            )
        values = (migration.app_label, migration.name, timezone.now())
        return f"{self._record_head}{', '.join(sql.Literal(v).as_string(conn) for v in values)})"


def post_migrate_apps(state: Any) -> Any:
    """Render a migrated state for post_migrate receivers, as Django's `migrate` does."""
    state.clear_delayed_apps_cache()
    apps = state.apps
    if isinstance(apps, DeferredApps):
        apps = apps.render()
    # Re-render models of apps without migrations to include their relations now that
    # the state is final (django/core/management/commands/migrate.py).
    with apps.bulk_update():
        model_keys = []
        for model_state in apps.real_models:
            model_key = model_state.app_label, model_state.name_lower
            model_keys.append(model_key)
            apps.unregister_model(*model_key)
    apps.render_multiple([ModelState.from_model(global_apps.get_model(*key)) for key in model_keys])
    return apps
