"""`manage.py schemadoc`: write docs/schema.md from the migrated database's catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections

from dbops.schemadoc.document import EmptySchema, document
from sqlmigrations.management.base import DatabaseCommand


class Command(DatabaseCommand):
    help = "Write the schema reference (tables, keys, indexes, ER diagram) from the database."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--output",
            type=Path,
            default=None,
            help="where to write it (default: docs/schema.md in the project)",
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help="write nothing; exit 1 if the file differs from the database",
        )
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, help="database alias")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            doc = document(connections[options["database"]], options["output"])
        except EmptySchema as err:
            raise CommandError(str(err)) from err
        if options["check"]:
            if not doc.up_to_date:
                raise CommandError(
                    f"{doc.output} is out of date with the database schema: "
                    "run `python manage.py schemadoc` to update it, and commit it."
                )
            self.stdout.write(f"{doc.output} is up to date.")
        elif doc.up_to_date:
            self.stdout.write(f"{doc.output} is up to date ({doc.tables} tables).")
        else:
            doc.write()
            self.stdout.write(f"Wrote {doc.output} ({doc.tables} tables and views).")
