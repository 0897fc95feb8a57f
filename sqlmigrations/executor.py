"""Django's migration executor, with a one-round-trip path for SQL file wrappers (D1)."""

from __future__ import annotations

from typing import Any

from django.apps import apps as global_apps
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
from django.db.migrations.state import ModelState
from django.utils import timezone
from psycopg import sql

from sqlmigrations.operations import DeferredApps, SQLFileMigration
from sqlmigrations.wrappers import shared_disk_loader


class SharedDiskLoader(MigrationLoader):
    """Django's loader, with the migrations the system checks of this run read from disk.

    Reading them again imported nothing new but built every migration a second time.
    """

    def load_disk(self) -> None:
        shared = shared_disk_loader()
        # The checks' loader ignores an app whose MIGRATION_MODULES module is missing,
        # where Django's raises: read the disk again then, to raise as Django does.
        if shared is None or any(
            explicit and module is not None
            for module, explicit in map(self.migrations_module, shared.unmigrated_apps)
        ):
            super().load_disk()
            return
        self.disk_migrations = dict(shared.disk_migrations)
        self.unmigrated_apps = set(shared.unmigrated_apps)
        self.migrated_apps = set(shared.migrated_apps)


class SQLMigrationExecutor(MigrationExecutor):
    """Apply a plain wrapper as one transaction in one round trip; anything else as Django.

    Django's executor spends four round trips on every migration (BEGIN, the operation,
    the django_migrations row, COMMIT) plus a schema editor and an ORM insert around them.
    For a wrapper of one transactional file, the file, its flyway_schema_history row and
    its django_migrations row go to the server as one query string, which PostgreSQL runs
    as one implicit transaction: all of it is committed, or none of it.
    """

    _record_head: str | None = None

    def __init__(self, connection: Any, progress_callback: Any = None) -> None:
        # MigrationExecutor.__init__, with the loader above.
        self.connection = connection
        self.loader = SharedDiskLoader(connection)
        self.recorder = MigrationRecorder(connection)
        self.progress_callback = progress_callback

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
