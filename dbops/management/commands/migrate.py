"""`migrate` with the SQL migration engine: owner role, lock, validation, repeatables."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError
from django.core.management.commands.migrate import Command as DjangoMigrate
from django.db import connections, migrations

from dbops import engine
from dbops.connections import use_migration_role
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
        use_migration_role(alias)
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

    def _waiting(self) -> None:
        self.stdout.write("Another migration run holds the lock; waiting for it to finish...")
