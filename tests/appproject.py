"""A throwaway Django project with one app of models, SQL migrations and a database of its own.

Used by the generator, check and drift tests: a test writes the app's `models.py`, runs the
real `manage.py` in a subprocess (makesqlmigration, migrate, check, schemadrift) and looks at
the files and the database, as a developer would.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.helpers import REPO

_counter = itertools.count()

SETTINGS = """from choregarden.settings import *  # noqa: F403

INSTALLED_APPS = ["dbops", {app!r}]
ROOT_URLCONF = {urls!r}
DATABASE_ROUTERS: list[str] = []
SQL_MIGRATIONS = {{**SQL_MIGRATIONS, "LOCATION": {location!r}}}
"""


@dataclass
class AppProject:
    """A project folder with app `<app>` (models.py, migrations/) and migrations_sql/."""

    root: Path
    server: Any  # tests.conftest.PgServer
    database: str
    app: str
    module: str  # settings module name

    @property
    def sql_dir(self) -> Path:
        return self.root / "migrations_sql"

    @property
    def migrations_dir(self) -> Path:
        return self.root / self.app / "migrations"

    def models(self, source: str) -> None:
        """Replace the app's models.py (the source is dedented)."""
        path = self.root / self.app / "models.py"
        path.write_text("from django.db import models\n\n" + textwrap.dedent(source))
        # A test may write models twice within a second: drop stale bytecode.
        shutil.rmtree(path.parent / "__pycache__", ignore_errors=True)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DB_")}
        env.pop("MIGRATION_DATABASE_URL", None)
        env.update(
            DJANGO_SETTINGS_MODULE=self.module,
            PYTHONPATH=os.pathsep.join([str(self.root), str(REPO)]),
            PYTHONDONTWRITEBYTECODE="1",
            DJANGO_ENV="test",
            DB_POOL="false",
            DATABASE_URL=self.server.url(self.database),
        )
        for key, value in self.server.options.items():
            env[{"sslmode": "DB_SSLMODE", "sslrootcert": "DB_SSLROOTCERT"}[key]] = value
        return env

    def manage(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run manage.py in the project folder with this project's settings."""
        return subprocess.run(
            [sys.executable, str(REPO / "manage.py"), *args],
            cwd=self.root,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def clone_database(self) -> AppProject:
        """Return this project on a fresh copy of its database (drop it when done)."""
        database = f"appproj_{os.getpid()}_{next(_counter)}"
        with psycopg.connect(**self.server.conninfo(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(database), sql.Identifier(self.database)
                )
            )
        return dataclasses.replace(self, database=database)

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(**self.server.conninfo(self.database), autocommit=True)

    def query(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        with self.connect() as conn:
            cur = conn.execute(query, params)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []

    def execute(self, statements: str) -> None:
        with self.connect() as conn:
            conn.execute(statements)  # type: ignore[arg-type]


def create_app_project(root: Path, server: Any, app: str = "shop") -> AppProject:
    """Make a project with an empty app, dbops' V1 files and a fresh database."""
    n = next(_counter)
    database = f"appproj_{os.getpid()}_{n}"
    with psycopg.connect(**server.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    module = f"appproject_settings_{n}"
    project = AppProject(root=root, server=server, database=database, app=app, module=module)
    project.sql_dir.mkdir(parents=True)
    for source in (REPO / "migrations_sql").glob("*1__create_migration_test_table.sql"):
        shutil.copy(source, project.sql_dir / source.name)
    (root / app / "migrations").mkdir(parents=True)
    (root / app / "__init__.py").write_text("")
    (root / app / "migrations" / "__init__.py").write_text("")
    project.models("")
    (root / f"{module}_urls.py").write_text("urlpatterns = []\n")
    (root / f"{module}.py").write_text(
        SETTINGS.format(app=app, urls=f"{module}_urls", location=str(project.sql_dir))
    )
    return project


def drop_app_project(project: AppProject) -> None:
    with psycopg.connect(**project.server.conninfo(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(project.database)
            )
        )


@pytest.fixture
def app_project(tmp_path: Path, pg_server: Any) -> Iterator[AppProject]:
    """A throwaway project with app `shop` and a fresh database (import it in a test module)."""
    project = create_app_project(tmp_path, pg_server)
    yield project
    drop_app_project(project)
