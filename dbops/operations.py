"""The Django migration operation that runs one SQL file, and the wrappers' base class (D1)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

from django.db import migrations
from django.db.migrations.operations.base import Operation

from dbops import engine
from dbops.sqlmigrations.exceptions import SqlMigrationError
from dbops.sqlmigrations.executor import apply_versioned, undo_versioned
from dbops.sqlmigrations.files import MigrationFile
from dbops.sqlmigrations.history import TYPE_BASELINE
from dbops.sqlmigrations.validation import baseline_version


class IrreversibleSQLMigration(migrations.exceptions.IrreversibleError):
    """A V file without a U file cannot be migrated backwards."""


class RunSQLFile(Operation):
    """Run migrations_sql/<script> and record it in flyway_schema_history."""

    reduces_to_sql = True
    reversible = True  # decided per file at run time: see database_backwards
    elidable = False

    def __init__(self, script: str) -> None:
        self.script = script

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return (self.__class__.__name__, [self.script], {})

    def describe(self) -> str:
        return f"Run {self.script}"

    @property
    def migration_name_fragment(self) -> str:
        return self.script.removesuffix(".sql").lower()

    def state_forwards(self, app_label: str, state: Any) -> None:
        pass  # the model state comes from the wrapper's state_operations

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        mf = engine.find_file(self.script)
        connection = schema_editor.connection
        run = engine.current_run(connection)
        sql = run.render(mf)
        if schema_editor.collect_sql:
            schema_editor.collected_sql.append(sql if sql.endswith("\n") else sql + "\n")
            return
        if _below_baseline(mf, run):
            return  # `sqlmigrations baseline` says the schema already has it: record only
        with connection.cursor() as cursor:
            apply_versioned(
                cursor,
                engine.history_for(cursor),
                mf,
                sql,
                transactional=mf.config.execute_in_transaction,
                existing=run.applied.get(mf.name.version),  # type: ignore[arg-type]
            )

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        mf = engine.find_file(self.script)
        undo = engine.undo_file_for(mf)
        if undo is None:
            raise IrreversibleSQLMigration(
                f"{self.script} has no undo file: write U{mf.name.version}__"
                f"{mf.name.raw_description}.sql with the reverse SQL to migrate it backwards"
            )
        connection = schema_editor.connection
        sql = engine.current_run(connection).render(undo)
        if schema_editor.collect_sql:
            schema_editor.collected_sql.append(sql)
            return
        with connection.cursor() as cursor:
            undo_versioned(cursor, engine.history_for(cursor), mf, undo, sql)


def _below_baseline(mf: MigrationFile, run: engine.Run) -> bool:
    """Tell whether a baseline row at or above this file's version stands in for it."""
    version = mf.name.version
    floor = baseline_version(run.rows)
    if version is None or floor is None or version > floor:
        return False
    existing = run.applied.get(version)
    return existing is None or existing.type == TYPE_BASELINE


def _sql_operations(migration: migrations.Migration) -> list[RunSQLFile] | None:
    """Return the RunSQLFile operations if the migration is a plain wrapper, else None."""
    found: list[RunSQLFile] = []
    for operation in migration.operations:
        if not isinstance(operation, migrations.SeparateDatabaseAndState):
            return None
        for db_op in operation.database_operations:
            if not isinstance(db_op, RunSQLFile):
                return None
            found.append(db_op)
    return found


class SQLFileMigration(migrations.Migration):
    """A migration that wraps one SQL file: transactional unless its .sql.conf says not."""

    def __init__(self, name: str, app_label: str) -> None:
        super().__init__(name, app_label)
        self.sql_scripts = [op.script for op in _sql_operations(self) or []]
        # A file with executeInTransaction=false (CREATE INDEX CONCURRENTLY, ...) runs in
        # autocommit: Django then opens no transaction around this migration either. A
        # missing or broken file is reported by the system check and by migrate.
        with contextlib.suppress(SqlMigrationError):
            self.atomic = all(
                engine.find_file(s).config.execute_in_transaction for s in self.sql_scripts
            )

    def apply(self, project_state: Any, schema_editor: Any, collect_sql: bool = False) -> Any:
        # Django clones the whole project state before every operation; with hundreds of
        # models that dominates a run. A wrapper's SQL never reads the state, so update the
        # state in place and run the file: per-file cost stays flat as the project grows.
        ops = _sql_operations(self)
        if ops is None or collect_sql:
            return super().apply(project_state, schema_editor, collect_sql)
        _state_forwards(self, project_state)
        for op in ops:
            op.database_forwards(self.app_label, schema_editor, project_state, project_state)
        return project_state


def _state_forwards(migration: SQLFileMigration, state: Any) -> None:
    """Apply a wrapper's state operations, deferring the rendering of the models it creates."""
    creates = [
        op
        for wrapper in migration.operations
        for op in wrapper.state_operations
        if isinstance(op, migrations.CreateModel)
    ]
    apps = state.__dict__.get("apps")
    total = sum(len(wrapper.state_operations) for wrapper in migration.operations)
    if apps is None or len(creates) != total:
        if isinstance(apps, _DeferredApps):
            apps.render()
        for operation in migration.operations:
            operation.state_forwards(migration.app_label, state)
        return
    # Django renders each new model into the state's apps at once, and every rendering
    # expires the caches of all models rendered before it: a long run of wrappers gets
    # quadratic. Nothing reads the apps between two wrappers, so render them on first use.
    if not isinstance(apps, _DeferredApps):
        apps = _DeferredApps(state, apps)
    del state.__dict__["apps"]  # add the model states without rendering them
    try:
        for operation in migration.operations:
            operation.state_forwards(migration.app_label, state)
    finally:
        state.__dict__["apps"] = apps
    apps.defer((migration.app_label, op.name_lower) for op in creates)


class _DeferredApps:
    """A state's rendered apps that render the models wrappers added when first used."""

    def __init__(self, state: Any, apps: Any) -> None:
        self._state = state
        self._apps = apps
        self._pending: set[tuple[str, str]] = set()

    def defer(self, keys: Iterable[tuple[str, str]]) -> None:
        self._pending.update(keys)

    def render(self) -> Any:
        """Render the pending models (and the models related to them) and return the apps."""
        if self._state.__dict__.get("apps") is self:
            self._state.__dict__["apps"] = self._apps
            self._state.reload_models(sorted(self._pending), delay=False)
            self._pending.clear()
        return self._apps

    def __getattr__(self, name: str) -> Any:
        return getattr(self.render(), name)
