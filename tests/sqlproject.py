"""Build a throwaway project of SQL migrations with wrappers, and run manage.py on it.

A test writes a few `migrations_sql` files; this module writes a settings module and a
package of wrapper migrations for them in a temporary folder, creates a fresh database on
the test server, and runs the real `manage.py` in a subprocess, as a developer would.

The fresh database is a copy of a template made once per test session, in which Django's
own apps (auth, contenttypes, sessions, ...) are migrated already: each project's first
`migrate` runs only its own files. A test about an empty database asks for one.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from dbops.connections.databases import drop_database
from sqlmigrations.lib.names import is_candidate, parse_name
from tests import forkserver
from tests.helpers import create_database, project_env

_counter = itertools.count()

WRAPPER = """from django.db import migrations

from sqlmigrations.operations import RunSQLFile, SQLFileMigration


class Migration(SQLFileMigration):
    dependencies = {dependencies!r}
    operations = [
        migrations.SeparateDatabaseAndState(database_operations=[RunSQLFile({script!r})]),
    ]
"""

SETTINGS = """from choregarden.settings import *  # noqa: F403

SQL_MIGRATIONS = {{
    **SQL_MIGRATIONS,
    "LOCATION": {location!r},
    "UNDO_LOCATION": None,
    "PLACEHOLDERS": {placeholders!r},
    "CHECK_CONVENTION": {convention!r},
}}
MIGRATION_MODULES = {{"dbops": {package!r}, "accounts": None, "chores": None}}
"""


@dataclass
class SqlProject:
    """A folder of SQL files, their wrappers and a database of their own."""

    root: Path
    server: Any  # tests.conftest.PgServer
    database: str
    placeholders: dict[str, str] = field(default_factory=dict)
    convention: bool = True
    package: str = ""

    @property
    def sql_dir(self) -> Path:
        return self.root / "migrations_sql"

    def write(self, name: str, text: str | bytes) -> Path:
        path = self.sql_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        return path

    def remove(self, name: str) -> None:
        (self.sql_dir / name).unlink()

    def sync_wrappers(self) -> None:
        """Write one wrapper per versioned file, each depending on the previous version."""
        package_dir = self.root / self.package
        if package_dir.exists():
            for old in package_dir.glob("*.py"):
                old.unlink()
        package_dir.mkdir(parents=True, exist_ok=True)
        (package_dir / "__init__.py").write_text("")
        versioned = []
        for path in sorted(self.sql_dir.rglob("*")):
            if path.is_file() and is_candidate(path.name):
                try:
                    name = parse_name(path.name)
                except Exception:  # noqa: BLE001 - bad names are for migrate to report
                    continue
                if name.kind == "V" and name.version is not None:
                    rel = path.relative_to(self.sql_dir).as_posix()
                    versioned.append((name.version, rel, path.name[: -len(".sql")]))
        versioned.sort(key=lambda item: item[0])
        previous: str | None = None
        for _version, script, stem in versioned:
            module = stem.replace(".", "_")
            deps = [("dbops", previous)] if previous else []
            (package_dir / f"{module}.py").write_text(
                WRAPPER.format(dependencies=deps, script=script)
            )
            previous = module
        (self.root / f"{self.package}_settings.py").write_text(
            SETTINGS.format(
                location=str(self.sql_dir),
                placeholders=self.placeholders,
                convention=self.convention,
                package=self.package,
            )
        )

    def env(self) -> dict[str, str]:
        return project_env(self.server, self.database, f"{self.package}_settings", self.root)

    def manage(
        self, *args: str, sync: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run manage.py with this project's settings (writing the wrappers first).

        The command runs in a fork of a process that imported Django once (tests/forkserver.py),
        as `python manage.py` would run it.
        """
        if sync:
            self.sync_wrappers()
        return forkserver.run_manage(*args, env=self.env(), timeout=timeout, cwd=self.root)

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(**self.server.conninfo(self.database), autocommit=True)

    def query(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        with self.connect() as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def history(self) -> list[tuple[Any, ...]]:
        return self.query(
            "SELECT installed_rank, version, description, type, script, checksum, "
            "installed_by, execution_time, success FROM flyway_schema_history "
            "ORDER BY installed_rank"
        )


def create_project(root: Path, server: Any, template: str | None = None) -> SqlProject:
    """Make an empty SQL project with a fresh database owned by the owner role.

    With `template`, the database starts as a copy of that one (see `create_template`).
    """
    n = next(_counter)
    database = f"sqlproj_{os.getpid()}_{n}"
    create_database(server, database, template=template)
    project = SqlProject(root=root, server=server, database=database, package=f"wrappers{n}")
    project.sql_dir.mkdir(parents=True, exist_ok=True)
    return project


def drop_project(project: SqlProject) -> None:
    drop_database(project.server.conninfo(), project.database)


def create_template(root: Path, server: Any) -> str:
    """Make a database with Django's own apps migrated and none of a project's files run.

    Return its name, to pass as `template` to `create_project`.
    """
    project = create_project(root, server)
    result = project.manage("migrate", "--no-input")
    if result.returncode != 0:
        drop_project(project)
        raise RuntimeError(f"migrating the template failed:\n{result.stdout}{result.stderr}")
    # The engine's history starts with a project's first file, as on an empty database.
    project.query("DROP TABLE IF EXISTS flyway_schema_history")
    project.query("DELETE FROM django_migrations WHERE app = 'dbops'")
    return project.database
