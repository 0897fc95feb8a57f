"""Every Django API the engine uses that Django does not document, and nothing else.

Django's migration framework (loader, executor, recorder, state, autodetector, writer)
and a few schema editor helpers are internal: they change between feature releases
without a deprecation period. The rest of the engine uses Django's documented API and
reaches these only through this module, so that a Django upgrade is checked here and by
tests/sqlmigrations/test_django_internals.py, which pins SUPPORTED and names each entry
of USED when another Django is installed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.apps import apps as global_apps
from django.core.management.sql import emit_post_migrate_signal, emit_pre_migrate_signal
from django.db.migrations.autodetector import MigrationAutodetector
from django.db.migrations.exceptions import (
    AmbiguityError,
    InconsistentMigrationHistory,
    IrreversibleError,
    NodeNotFoundError,
)
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.questioner import MigrationQuestioner
from django.db.migrations.recorder import MigrationRecorder
from django.db.migrations.state import ModelState, ProjectState
from django.db.migrations.writer import MigrationWriter
from psycopg import sql

__all__ = [
    "SUPPORTED",
    "USED",
    "AmbiguityError",
    "InconsistentMigrationHistory",
    "IrreversibleError",
    "MigrationAutodetector",
    "MigrationExecutor",
    "MigrationLoader",
    "MigrationQuestioner",
    "MigrationWriter",
    "ModelState",
    "NodeNotFoundError",
    "ProjectState",
    "ReusingLoader",
    "alter_column_comment_sql",
    "cached_apps",
    "effective_default",
    "emit_post_migrate_signal",
    "emit_pre_migrate_signal",
    "field_indexes_sql",
    "forget_cached_apps",
    "in_atomic_block",
    "init_executor",
    "post_migrate_apps",
    "project_state",
    "record_applied_sql",
    "record_unapplied_sql",
    "set_cached_apps",
]

# The Django feature release (major, minor) this module was written and tested for.
SUPPORTED = (5, 2)

# Each undocumented Django name the engine relies on, and what for.
USED: dict[str, str] = {
    "django.core.management.sql.emit_pre_migrate_signal": "migrate's plain path",
    "django.core.management.sql.emit_post_migrate_signal": "migrate's plain path",
    "django.core.management.commands.migrate.Command.migration_progress_callback": (
        "overridden by our migrate: 'Adopting' lines and the run's result"
    ),
    "django.core.management.commands.migrate.Command.describe_operation": (
        "overridden by our migrate: --plan names the SQL file a wrapper runs"
    ),
    "django.db.migrations.autodetector.MigrationAutodetector": "makesqlmigration",
    "django.db.migrations.exceptions.AmbiguityError": "backward plans",
    "django.db.migrations.exceptions.InconsistentMigrationHistory": "migrate's error",
    "django.db.migrations.exceptions.IrreversibleError": "files without an undo file",
    "django.db.migrations.exceptions.NodeNotFoundError": "backward plans",
    "django.db.migrations.executor.MigrationExecutor": "the one-round-trip executor",
    "django.db.migrations.executor.MigrationExecutor._create_project_state": (
        "the state before migrate's plain path, as Django's migrate makes it"
    ),
    "django.db.migrations.executor.MigrationExecutor.apply_migration": "overridden",
    "django.db.migrations.executor.MigrationExecutor.loader": "plans",
    "django.db.migrations.executor.MigrationExecutor.migrate": "migrate's plain path",
    "django.db.migrations.executor.MigrationExecutor.migration_plan": "plans",
    "django.db.migrations.executor.MigrationExecutor.progress_callback": "one-trip path",
    "django.db.migrations.executor.MigrationExecutor.recorder": "one-trip path",
    "django.db.migrations.graph.MigrationGraph.leaf_nodes": "plans",
    "django.db.migrations.graph.MigrationGraph.nodes": "backward plans",
    "django.db.migrations.loader.MigrationLoader": "wrappers, checks, plans",
    "django.db.migrations.loader.MigrationLoader.load_disk": (
        "migrate's executor reuses the migrations its system checks read from disk"
    ),
    "django.db.migrations.loader.MigrationLoader.disk_migrations": "the same",
    "django.db.migrations.loader.MigrationLoader.migrated_apps": "the same",
    "django.db.migrations.loader.MigrationLoader.unmigrated_apps": "the same",
    "django.db.migrations.loader.MigrationLoader.migrations_module": "the same",
    "django.db.migrations.executor.MigrationExecutor.__init__": (
        "its attributes (connection, loader, recorder, progress_callback), set with that loader"
    ),
    "django.db.migrations.loader.MigrationLoader.check_consistent_history": "migrate",
    "django.db.migrations.loader.MigrationLoader.detect_conflicts": "migrate",
    "django.db.migrations.loader.MigrationLoader.graph": "plans",
    "django.db.migrations.loader.MigrationLoader.project_state": "makesqlmigration",
    "django.db.migrations.loader.MigrationLoader.replacements": "backward plans",
    "django.db.migrations.questioner.MigrationQuestioner": "makesqlmigration",
    "django.db.migrations.recorder.MigrationRecorder.Migration": (
        "django_migrations' table, written in the file's own query string"
    ),
    "django.db.migrations.state.ModelState.from_model": "post_migrate's apps",
    "django.db.migrations.autodetector.MigrationAutodetector.changes": "makesqlmigration",
    "django.db.migrations.recorder.MigrationRecorder.ensure_schema": "one-trip path",
    "django.db.migrations.state.ProjectState": "model state of wrappers",
    "django.db.migrations.state.ProjectState.clone": "pre_migrate's apps",
    "django.db.migrations.state.ProjectState.from_apps": "makesqlmigration",
    "django.db.migrations.state.ProjectState.models": "model state of wrappers",
    "django.db.migrations.state.ProjectState.apps": (
        "a cached_property kept in the instance __dict__: wrappers defer its rendering"
    ),
    "django.db.migrations.state.ProjectState.reload_models": "deferred rendering",
    "django.db.migrations.state.ProjectState.clear_delayed_apps_cache": "post_migrate",
    "django.db.migrations.state.StateApps.bulk_update": "post_migrate's apps",
    "django.db.migrations.state.StateApps.real_models": "post_migrate's apps",
    "django.db.migrations.state.StateApps.render_multiple": "post_migrate's apps",
    "django.db.migrations.state.StateApps.unregister_model": "post_migrate's apps",
    "django.db.migrations.writer.MigrationWriter": "makesqlmigration's wrapper source",
    "django.db.migrations.writer.MigrationWriter.as_string": "makesqlmigration",
    "django.db.backends.base.base.BaseDatabaseWrapper.in_atomic_block": (
        "the one-round-trip path needs autocommit outside any atomic block"
    ),
    "django.db.backends.base.schema.BaseDatabaseSchemaEditor._effective_default": (
        "makesqlmigration keeps a model default in the database"
    ),
    "django.db.backends.base.schema.BaseDatabaseSchemaEditor._field_indexes_sql": (
        "makesqlmigration's index steps"
    ),
    "django.db.backends.base.schema.BaseDatabaseSchemaEditor._alter_column_comment_sql": (
        "makesqlmigration's COMMENT ON COLUMN"
    ),
}


def project_state(executor: MigrationExecutor) -> ProjectState:
    """Return the project state with the applied migrations, as Django's migrate does."""
    return executor._create_project_state(with_applied_migrations=True)


def cached_apps(state: ProjectState) -> Any:
    """Return the state's rendered apps if it rendered them, else None (renders nothing)."""
    return state.__dict__.get("apps")


def set_cached_apps(state: ProjectState, apps: Any) -> None:
    """Make `apps` what `state.apps` returns without rendering."""
    state.__dict__["apps"] = apps


def forget_cached_apps(state: ProjectState) -> None:
    """Drop the rendered apps, so that model states can be added without rendering them."""
    del state.__dict__["apps"]


def post_migrate_apps(state: ProjectState, resolve: Callable[[Any], Any] = lambda a: a) -> Any:
    """Render a migrated state for post_migrate receivers, as Django's `migrate` does.

    `resolve` turns what `state.apps` returns into the rendered apps (see DeferredApps).
    """
    state.clear_delayed_apps_cache()
    apps = resolve(state.apps)
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


class ReusingLoader(MigrationLoader):
    """Django's loader, with the migrations another loader of this run read from disk.

    Reading them again imports nothing new but builds every migration a second time.
    """

    def __init__(self, connection: Any, shared: MigrationLoader | None) -> None:
        self._shared = shared
        super().__init__(connection)

    def load_disk(self) -> None:
        shared = self._shared
        # The shared loader ignores an app whose MIGRATION_MODULES module is missing,
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


def init_executor(
    executor: MigrationExecutor,
    connection: Any,
    progress_callback: Any,
    shared: MigrationLoader | None,
) -> None:
    """Do MigrationExecutor.__init__, with a loader that reuses `shared`'s disk reading."""
    executor.connection = connection
    executor.loader = ReusingLoader(connection, shared)
    executor.recorder = MigrationRecorder(connection)
    executor.progress_callback = progress_callback


def _recorder_table(connection: Any) -> str:
    return MigrationRecorder(connection).Migration._meta.db_table


_insert_heads: dict[str, str] = {}


def record_applied_sql(connection: Any, app_label: str, name: str, applied: Any) -> str:
    """Return the INSERT that MigrationRecorder.record_applied would run."""
    table = _recorder_table(connection)
    connection.ensure_connection()
    conn = connection.connection
    head = _insert_heads.get(table)
    if head is None:
        # Composed once: only the values change from wrapper to wrapper.
        head = _insert_heads[table] = (
            sql.SQL("INSERT INTO {} (app, name, applied) VALUES (")
            .format(sql.Identifier(table))
            .as_string(conn)
        )
    values = (app_label, name, applied)
    return f"{head}{', '.join(sql.Literal(v).as_string(conn) for v in values)})"


def record_unapplied_sql(connection: Any, app_label: str, name: str) -> str:
    """Return the DELETE that MigrationRecorder.record_unapplied would run."""
    table = _recorder_table(connection)
    connection.ensure_connection()
    return (
        sql.SQL("DELETE FROM {} WHERE app = {} AND name = {}")
        .format(sql.Identifier(table), sql.Literal(app_label), sql.Literal(name))
        .as_string(connection.connection)
    )


def in_atomic_block(connection: Any) -> bool:
    """Tell whether the connection is inside transaction.atomic."""
    return bool(connection.in_atomic_block)


def effective_default(field: Any) -> Any:
    """Return the database value of a field's default, as the schema editor computes it."""
    from django.db.backends.base.schema import BaseDatabaseSchemaEditor

    return BaseDatabaseSchemaEditor._effective_default(field)


def field_indexes_sql(editor: Any, model: Any, field: Any) -> list[Any]:
    """Return the statements that create a field's indexes (db_index, unique LIKE)."""
    return list(editor._field_indexes_sql(model, field))


def alter_column_comment_sql(editor: Any, model: Any, field: Any, comment: str) -> Any:
    """Return the (sql, params) that set a column's comment."""
    return editor._alter_column_comment_sql(model, field, None, comment)
