"""`migrate` with the SQL migration engine: owner role, lock, validation, repeatables."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError
from django.core.management.commands.migrate import Command as DjangoMigrate
from django.db import connections

from dbops import engine
from dbops.connections import use_migration_role
from dbops.sqlmigrations.exceptions import SqlMigrationError


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
        except SqlMigrationError as err:
            raise CommandError(str(err)) from err

    def _waiting(self) -> None:
        self.stdout.write("Another migration run holds the lock; waiting for it to finish...")
