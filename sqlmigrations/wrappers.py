"""Find the Django migrations that wrap SQL files (RunSQLFile), across every app."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import migrations
from django.db.migrations.operations.base import Operation

from sqlmigrations.django_internals import MigrationLoader
from sqlmigrations.operations import RunSQLFile


@dataclass(frozen=True)
class Wrapper:
    """One Django migration and the SQL files its operations run."""

    app_label: str
    name: str
    scripts: tuple[str, ...]
    dependencies: tuple[tuple[str, str], ...]
    module: str  # the migration's module, for `path` (computed only for messages)

    @property
    def key(self) -> tuple[str, str]:
        return (self.app_label, self.name)

    @property
    def path(self) -> str:
        """Return the migration's .py file, relative to BASE_DIR where possible."""
        return migration_file(self.module, self.key)

    def __str__(self) -> str:
        return f"{self.app_label}.{self.name} ({self.path})"


def migration_file(module: str, key: tuple[str, str]) -> str:
    """Return the .py file of a loaded migration module, relative to BASE_DIR if inside."""
    filename = getattr(sys.modules.get(module), "__file__", None)
    if not filename:
        return f"{key[0]}/migrations/{key[1]}.py"
    path = Path(filename)
    try:
        return path.relative_to(Path(settings.BASE_DIR)).as_posix()
    except ValueError:
        return str(path)


def database_operations(operation: Operation) -> list[Operation]:
    """Return what an operation runs on the database: its own, or SeparateDatabaseAndState's."""
    if isinstance(operation, migrations.SeparateDatabaseAndState):
        return list(operation.database_operations)
    return [operation]


def scripts_of(migration: migrations.Migration) -> list[str]:
    """Return the SQL files a migration runs, top level or inside SeparateDatabaseAndState."""
    return [
        op.script
        for operation in migration.operations
        for op in database_operations(operation)
        if isinstance(op, RunSQLFile)
    ]


# The loader that read the migration files, shared inside one_disk_load().
_disk: ContextVar[list[MigrationLoader] | None] = ContextVar("sqlmigrations_disk", default=None)


@contextmanager
def one_disk_load() -> Iterator[None]:
    """Read the migration files once for everything inside (one `migrate` run)."""
    token = _disk.set([])
    try:
        yield
    finally:
        _disk.reset(token)


def disk_loader() -> MigrationLoader:
    """Return a loader that has read the migration files, without a graph or a database.

    Inside one_disk_load() the first one read is returned again.
    """
    shared = _disk.get()
    if shared:
        return shared[0]
    # Only read the files: building the graph would raise on the very broken
    # dependencies the system check is there to explain.
    loader = MigrationLoader(None, ignore_no_migrations=True, load=False)
    loader.load_disk()
    if shared is not None:
        shared.append(loader)
    return loader


def shared_disk_loader() -> MigrationLoader | None:
    """Return the loader disk_loader() read inside one_disk_load(), if it has read one."""
    shared = _disk.get()
    return shared[0] if shared else None


def find_wrappers(loader: MigrationLoader | None = None) -> list[Wrapper]:
    """Return every migration on disk that runs at least one SQL file (no database needed)."""
    if loader is None:
        loader = disk_loader()
    result: list[Wrapper] = []
    for (app_label, name), migration in sorted(loader.disk_migrations.items()):
        scripts = scripts_of(migration)
        if scripts:
            result.append(
                Wrapper(
                    app_label,
                    name,
                    tuple(scripts),
                    tuple(tuple(d) for d in migration.dependencies),  # type: ignore[misc]
                    type(migration).__module__,
                )
            )
    return result


def sql_apps(wrappers: list[Wrapper]) -> list[str]:
    """Return the labels of the apps whose schema comes from SQL files, in a stable order."""
    return sorted({w.app_label for w in wrappers})
