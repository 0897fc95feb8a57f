"""The schema reference of the migrated database, compared with the file that holds it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.db.backends.base.base import BaseDatabaseWrapper

from dbops.schemadoc import render
from sqlmigrations import engine


class EmptySchema(Exception):
    """The schema to document has no tables: nothing is migrated yet."""


@dataclass
class SchemaDoc:
    """The reference as the database gives it, and the file's text (None: no file yet)."""

    output: Path
    text: str
    current: str | None
    tables: int

    @property
    def up_to_date(self) -> bool:
        return self.current == self.text

    def write(self) -> None:
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.output.write_text(self.text)


def default_output() -> Path:
    return Path(settings.BASE_DIR) / "docs" / "schema.md"


def framework_tables() -> set[str]:
    """Return the tables of Django's and installed packages' apps, and the two histories."""
    tables = {"django_migrations", engine.option("TABLE")}
    for app_config in apps.get_app_configs():
        installed = "site-packages" in Path(app_config.path).parts
        if installed or app_config.name.startswith("django."):
            for model in app_config.get_models(include_auto_created=True):
                tables.add(model._meta.db_table)
    return tables


def document(connection: BaseDatabaseWrapper, output: Path | None = None) -> SchemaDoc:
    """Render the schema reference from the catalog, beside the text of `output` now."""
    output = output or default_output()
    schema = engine.option("SCHEMA")
    with connection.cursor() as cursor:
        catalog = render.collect(cursor, schema)
    if not catalog.tables:
        raise EmptySchema(f"Schema {schema!r} has no tables: run `python manage.py migrate` first.")
    text = render.render(catalog, framework_tables())
    current = output.read_text() if output.exists() else None
    return SchemaDoc(output, text, current, len(catalog.tables))
