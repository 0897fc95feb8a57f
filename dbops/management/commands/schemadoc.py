"""`manage.py schemadoc`: write docs/schema.md from the migrated database's catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.management.base import CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections

from dbops.schemadoc import render as schemadoc
from sqlmigrations import engine
from sqlmigrations.management.base import DatabaseCommand


def framework_tables() -> set[str]:
    """Return the tables of Django's and installed packages' apps, and the two histories."""
    tables = {"django_migrations", engine.option("TABLE")}
    for app_config in apps.get_app_configs():
        installed = "site-packages" in Path(app_config.path).parts
        if installed or app_config.name.startswith("django."):
            for model in app_config.get_models(include_auto_created=True):
                tables.add(model._meta.db_table)
    return tables


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
        output: Path = options["output"] or Path(settings.BASE_DIR) / "docs" / "schema.md"
        schema = engine.option("SCHEMA")
        with connections[options["database"]].cursor() as cursor:
            catalog = schemadoc.collect(cursor, schema)
        if not catalog.tables:
            raise CommandError(
                f"Schema {schema!r} has no tables: run `python manage.py migrate` first."
            )
        text = schemadoc.render(catalog, framework_tables())
        current = output.read_text() if output.exists() else None
        if options["check"]:
            if current != text:
                raise CommandError(
                    f"{output} is out of date with the database schema: "
                    "run `python manage.py schemadoc` to update it, and commit it."
                )
            self.stdout.write(f"{output} is up to date.")
            return
        if current == text:
            self.stdout.write(f"{output} is up to date ({len(catalog.tables)} tables).")
            return
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
        self.stdout.write(f"Wrote {output} ({len(catalog.tables)} tables and views).")
