"""The Django migration operation that runs one SQL file, and the wrappers' base class (D1)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any

from django.db import migrations
from django.db.migrations.operations.base import Operation

from sqlmigrations import applying, engine
from sqlmigrations.django_internals import (
    IrreversibleError,
    cached_apps,
    forget_cached_apps,
    in_atomic_block,
    record_unapplied_sql,
    set_cached_apps,
)
from sqlmigrations.lib.exceptions import SqlMigrationError
from sqlmigrations.lib.executor import below_baseline
from sqlmigrations.lib.files import MigrationFile
from sqlmigrations.lib.history import TYPE_BASELINE
from sqlmigrations.lib.validation import baseline_version


class IrreversibleSQLMigration(IrreversibleError):
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
        if schema_editor.collect_sql:
            sql = engine.current_run(schema_editor.connection).render(engine.find_file(self.script))
            schema_editor.collected_sql.append(sql if sql.endswith("\n") else sql + "\n")
            return
        self.run_file(schema_editor.connection)

    def run_file(self, connection: Any, also: str = "") -> None:
        """Apply the file and record it, then run `also` (see applying.apply_file)."""
        applying.apply_file(connection, engine.find_file(self.script), also=also)

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        if schema_editor.collect_sql:
            undo = self._undo()
            text = engine.current_run(schema_editor.connection).render(undo)
            schema_editor.collected_sql.append(text)
            return
        self.undo_file(schema_editor.connection)

    def undo_file(self, connection: Any, also: str = "") -> None:
        """Run the file's undo file and remove its history row, then run `also` (Django's
        record of the wrapper), all committed together (see applying.undo_file)."""
        undo = self._undo()
        applying.undo_file(connection, engine.find_file(self.script), undo, also)

    def _undo(self) -> MigrationFile:
        undo, reason = engine.undo_file(self.script)
        if undo is None:
            raise IrreversibleSQLMigration(f"{self.script} {reason}")
        return undo


def recorded_only(migration: Any, run: engine.Run) -> str | None:
    """Say why `migrate` only records this wrapper for Django, or None when it runs SQL.

    The history already holds its file (the Flyway CLI, or a run whose Django rows were
    lost, applied it), or a baseline stands in for it.
    """
    scripts = getattr(migration, "sql_scripts", None)
    if not scripts:
        return None
    reasons = set()
    for script in scripts:
        try:
            mf = engine.find_file(script)
        except SqlMigrationError:
            return None
        row = run.applied.get(mf.name.version)  # type: ignore[arg-type]
        if row is not None and row.type != TYPE_BASELINE:
            reasons.add(f"already in {engine.option('TABLE')}, applied by {row.installed_by}")
        elif _below_baseline(mf, run):
            reasons.add("below the baseline")
        else:
            return None
    return "; ".join(sorted(reasons))


def _below_baseline(mf: MigrationFile, run: engine.Run) -> bool:
    """Tell whether a baseline row at or above this file's version stands in for it."""
    existing = run.applied.get(mf.name.version)  # type: ignore[arg-type]
    return below_baseline(mf, existing, baseline_version(run.rows))


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

    def unapply(self, project_state: Any, schema_editor: Any, collect_sql: bool = False) -> Any:
        # Django records a migration as unapplied after the transaction of its undo has
        # committed: a kill between the two leaves Django's history and the schema apart.
        # Here the undo file, its flyway_schema_history row and Django's row go together.
        ops = _sql_operations(self)
        if ops is None or collect_sql or self.replaces:
            return super().unapply(project_state, schema_editor, collect_sql)
        connection = schema_editor.connection
        forget = record_unapplied_sql(connection, self.app_label, self.name)
        for n, op in enumerate(reversed(ops), start=1):
            op.undo_file(connection, also=forget if n == len(ops) else "")
        return project_state

    def applies_in_one_trip(self, connection: Any) -> bool:
        """Tell whether apply_in_one_trip can run this wrapper on this connection.

        It takes a wrapper of one transactional file, on a connection in autocommit mode
        (not inside an atomic block), where the server runs the query string as one
        implicit transaction.
        """
        ops = _sql_operations(self)
        return (
            ops is not None
            and len(ops) == 1
            and self.atomic
            and not self.replaces
            and connection.get_autocommit()
            and not in_atomic_block(connection)
        )

    def apply_in_one_trip(self, project_state: Any, connection: Any, record: str) -> Any:
        """Run the file, its history row and `record` (Django's row for this wrapper) as
        one transaction in one round trip, and update the state in place.

        Django's executor spends four round trips on a migration (BEGIN, the operation,
        its django_migrations row, COMMIT) and a schema editor around them.
        """
        (op,) = _sql_operations(self) or []
        _state_forwards(self, project_state)
        op.run_file(connection, also=record)
        return project_state


def _state_forwards(migration: SQLFileMigration, state: Any) -> None:
    """Apply a wrapper's state operations, deferring the rendering of the models it creates."""
    creates = [
        op
        for wrapper in migration.operations
        for op in wrapper.state_operations
        if isinstance(op, migrations.CreateModel)
    ]
    apps = cached_apps(state)
    total = sum(len(wrapper.state_operations) for wrapper in migration.operations)
    if apps is None or len(creates) != total:
        if isinstance(apps, DeferredApps):
            apps.render()
        for operation in migration.operations:
            operation.state_forwards(migration.app_label, state)
        return
    # Django renders each new model into the state's apps at once, and every rendering
    # expires the caches of all models rendered before it: a long run of wrappers gets
    # quadratic. Nothing reads the apps between two wrappers, so render them on first use.
    if not isinstance(apps, DeferredApps):
        apps = DeferredApps(state, apps)
    forget_cached_apps(state)  # add the model states without rendering them
    try:
        for operation in migration.operations:
            operation.state_forwards(migration.app_label, state)
    finally:
        set_cached_apps(state, apps)
    apps.defer((migration.app_label, op.name_lower) for op in creates)


class DeferredApps:
    """A state's rendered apps that render the models wrappers added when first used.

    With `apps=None` nothing is rendered yet: the first use renders the whole state.
    """

    def __init__(self, state: Any, apps: Any = None) -> None:
        self._state = state
        self._apps = apps
        self._pending: set[tuple[str, str]] = set()

    def defer(self, keys: Iterable[tuple[str, str]]) -> None:
        self._pending.update(keys)

    def render(self) -> Any:
        """Render the pending models (and the models related to them) and return the apps."""
        if cached_apps(self._state) is self:
            if self._apps is None:
                forget_cached_apps(self._state)
                self._apps = self._state.apps  # ProjectState renders every model it holds
            else:
                set_cached_apps(self._state, self._apps)
                self._state.reload_models(sorted(self._pending), delay=False)
            self._pending.clear()
        return self._apps

    def __getattr__(self, name: str) -> Any:
        return getattr(self.render(), name)


def rendered(apps: Any) -> Any:
    """Return the rendered apps behind what `state.apps` returned."""
    return apps.render() if isinstance(apps, DeferredApps) else apps


def defer_rendering(state: Any) -> Any:
    """Make a state render its models on first use instead of before the first migration.

    Django's executor renders the whole state before it applies the first migration; a
    run of wrappers never reads it, and an operation that does renders it then.
    """
    if cached_apps(state) is None:
        set_cached_apps(state, DeferredApps(state))
    return state


class LazyApps:
    """An apps registry built when first used: a signal nobody reads costs nothing."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._apps: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._apps is None:
            self._apps = self._build()
        return getattr(self._apps, name)
