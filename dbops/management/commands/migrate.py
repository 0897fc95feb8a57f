"""`migrate` with the SQL migration engine: owner role, lock, validation, repeatables."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from django.apps import apps
from django.core.management.base import CommandError
from django.core.management.commands.migrate import Command as DjangoMigrate
from django.core.management.sql import emit_post_migrate_signal, emit_pre_migrate_signal
from django.db import connections, migrations
from django.db.migrations.executor import MigrationExecutor
from django.utils.module_loading import module_has_submodule

from dbops import engine
from dbops.connections import connect_or_explain, use_migration_role, without_pool
from dbops.operations import RunSQLFile
from dbops.sqlmigrations.exceptions import SqlMigrationError
from dbops.sqlmigrations.executor import MigrationFailed, locate


class Command(DjangoMigrate):
    help = (
        "Apply migrations_sql/ files (through their Django wrappers) and Django's own "
        "migrations, validated first, under Flyway's advisory lock."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        alias = options["database"]
        owner = use_migration_role(alias)
        without_pool(alias)
        connect_or_explain(alias, setting="MIGRATION_DATABASE_URL" if owner else "DATABASE_URL")
        connection = connections[alias]
        try:
            if options["plan"]:
                super().handle(*args, **options)
                return
            with engine.locked_run(connection, on_wait=self._waiting) as run:
                problems = engine.validate_database(connection, run.rows)
                if problems:
                    raise CommandError(
                        f"Validation failed, nothing was applied ({len(problems)} problem"
                        f"{'s' if len(problems) != 1 else ''}):\n"
                        + "\n".join(f"  - {p}" for p in problems)
                    )
                if not self._up_to_date(connection, run, options):
                    super().handle(*args, **options)
                if not options["app_label"]:
                    applied = engine.apply_repeatables(connection)
                    for script in applied:
                        if options["verbosity"] >= 1:
                            self.stdout.write(f"  Applying repeatable {script}... OK")
        except MigrationFailed as err:
            # The file's transaction is rolled back by now: find the failing statement's line.
            connection.ensure_connection()
            raise CommandError(str(locate(connection.connection, err))) from err
        except SqlMigrationError as err:
            raise CommandError(str(err)) from err

    @staticmethod
    def describe_operation(operation: Any, backwards: bool) -> tuple[str, bool]:
        """For --plan: name the SQL file a wrapper runs (or its undo file) and its state."""
        if isinstance(operation, migrations.SeparateDatabaseAndState):
            files = [op for op in operation.database_operations if isinstance(op, RunSQLFile)]
            if files:
                parts, is_error = [], False
                for op in files:
                    if not backwards:
                        parts.append(f"Run {op.script}")
                        continue
                    try:
                        undo = engine.undo_file_for(engine.find_file(op.script))
                    except SqlMigrationError:
                        undo = None
                    if undo is None:
                        parts.append(f"IRREVERSIBLE: {op.script} has no undo file")
                        is_error = True
                    else:
                        parts.append(f"Run {undo.script} (undo of {op.script})")
                states = [state_op.describe() for state_op in operation.state_operations]
                if states:
                    parts.append("state: " + "; ".join(states))
                return " — ".join(parts), is_error
        return DjangoMigrate.describe_operation(operation, backwards)

    def _up_to_date(self, connection: Any, run: engine.Run, options: dict[str, Any]) -> bool:
        """Finish a plain run with nothing to apply without rendering Django's model state.

        Django renders the historical models of every migration (for pre_migrate) and runs
        the autodetector even when nothing is pending: on a deploy with hundreds of wrappers
        that costs seconds. When every SQL file is applied and Django's plan is empty, this
        sends pre_migrate and post_migrate with the project's own apps, as `flush` does.
        """
        if options["app_label"] or options["run_syncdb"] or options["prune"]:
            return False
        if options["check_unapplied"] or options["fake"] or options["fake_initial"]:
            return False
        if any(mf.kind == "V" and mf.name.version not in run.applied for mf in engine.load_files()):
            return False
        for app_config in apps.get_app_configs():  # as Django's migrate: signal receivers
            if module_has_submodule(app_config.module, "management"):
                import_module(".management", app_config.name)
        connection.prepare_database()
        executor = MigrationExecutor(connection)
        executor.loader.check_consistent_history(connection)
        targets = executor.loader.graph.leaf_nodes()
        if executor.loader.detect_conflicts() or executor.migration_plan(targets):
            return False
        verbosity, interactive = options["verbosity"], options["interactive"]
        if verbosity >= 1:
            labels = ", ".join(sorted({app_label for app_label, _ in targets})) or "(none)"
            self.stdout.write(self.style.MIGRATE_HEADING("Operations to perform:"))
            self.stdout.write(self.style.MIGRATE_LABEL("  Apply all migrations: ") + labels)
        emit_pre_migrate_signal(
            verbosity, interactive, connection.alias, stdout=self.stdout, plan=[]
        )
        if verbosity >= 1:
            self.stdout.write(self.style.MIGRATE_HEADING("Running migrations:"))
            self.stdout.write("  No migrations to apply.")
        emit_post_migrate_signal(
            verbosity, interactive, connection.alias, stdout=self.stdout, plan=[]
        )
        return True

    def _waiting(self) -> None:
        self.stdout.write("Another migration run holds the lock; waiting for it to finish...")
