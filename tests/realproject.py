"""A throwaway copy of this project (apps, settings, SQL files) with a database of its own.

For journeys a developer makes in a fresh clone: the test changes the copy's files, runs the
copy's own `manage.py` in a subprocess and looks at the files and the database.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dbops.connections.databases import drop_database
from tests.helpers import REPO, create_database, project_env

# What a clone holds that `manage.py` reads (docs, tests and benchmarks are left out).
PARTS = (
    "manage.py",
    "pyproject.toml",
    "flyway.toml",
    "choregarden",
    "accounts",
    "chores",
    "sqlmigrations",
    "dbops",
    "templates",
    "migrations_sql",
    "migrations_undo",
)
_counter = itertools.count()


@dataclass
class RealProject:
    """A copy of the project in `root`, migrated into `database` by its own commands."""

    root: Path
    server: Any  # tests.conftest.PgServer
    database: str

    @property
    def sql_dir(self) -> Path:
        return self.root / "migrations_sql"

    def env(self) -> dict[str, str]:
        env = project_env(self.server, self.database, "choregarden.settings", self.root)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        return env

    def manage(
        self, *args: str, timeout: float = 180, stdin: Any = subprocess.DEVNULL
    ) -> subprocess.CompletedProcess[str]:
        """Run the copy's manage.py (its folder comes first on sys.path, not this checkout).

        stdin is not a terminal unless the caller passes one, so nothing can prompt.
        """
        return subprocess.run(
            [sys.executable, str(self.root / "manage.py"), *args],
            cwd=self.root,
            env=self.env(),
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def query(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(**self.server.conninfo(self.database), autocommit=True) as conn:
            cur = conn.execute(query, params)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []


def copy_real_project(root: Path, server: Any, template: str | None = None) -> RealProject:
    """Copy the project's code and migrations into `root` and create a database for it.

    The database is empty, or with `template` a copy of that one (e.g. one already migrated).
    """
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in PARTS:
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, root / part, ignore=ignore)
        elif source.is_file():
            shutil.copy2(source, root / part)
    database = f"realproj_{os.getpid()}_{next(_counter)}"
    create_database(server, database, template=template)
    return RealProject(root=root, server=server, database=database)


@pytest.fixture
def real_project(tmp_path: Path, pg_server: Any) -> Iterator[RealProject]:
    """A copy of this project on a fresh database (import it in a test module)."""
    project = copy_real_project(tmp_path, pg_server)
    yield project
    drop_database(pg_server.conninfo(), project.database)
