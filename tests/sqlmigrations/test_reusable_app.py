"""The engine is an app of its own: another Django project installs it and migrates.

The project here has Django's contenttypes and auth, the engine and one app of wrapper
migrations, Django's own PostgreSQL backend and manage.py, and nothing of this project's
apps; SQL_MIGRATIONS names its folder of SQL files.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dbops.connections.databases import drop_database
from tests.helpers import REPO, create_database

pytestmark = pytest.mark.slow

SETTINGS = """from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "a throwaway project"
USE_TZ = True
INSTALLED_APPS = [
    "sqlmigrations",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "library",
]
DATABASES = {{"default": {{"ENGINE": "django.db.backends.postgresql", {database}}}}}
SQL_MIGRATIONS = {{"LOCATION": BASE_DIR / "sql"}}
"""

MANAGE = """import sys

from django.core.management import execute_from_command_line

execute_from_command_line(sys.argv)
"""

WRAPPER = """from django.db import migrations

from sqlmigrations.operations import RunSQLFile, SQLFileMigration


class Migration(SQLFileMigration):
    initial = {initial}
    dependencies = {dependencies!r}
    operations = [
        migrations.SeparateDatabaseAndState(database_operations=[RunSQLFile({script!r})]),
    ]
"""

FILES = {
    "V1__create_books_table.sql": """
        -- Creates the books table. Rollback: DROP TABLE books.
        CREATE TABLE books (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, title text);
        COMMENT ON TABLE books IS 'Books on the shelves.';
        COMMENT ON COLUMN books.title IS 'The title on the cover.';
    """,
    "V2__add_books_author.sql": """
        -- Adds the author of each book. Rollback: ALTER TABLE books DROP COLUMN author.
        ALTER TABLE books ADD COLUMN author text;
        COMMENT ON COLUMN books.author IS 'Who wrote it.';
    """,
}


@dataclass
class OtherProject:
    root: Path
    env: dict[str, str]
    conninfo: dict[str, Any]

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the project's own manage.py."""
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.fixture
def other_project(tmp_path: Path, pg_server: Any) -> Iterator[OtherProject]:
    """A Django project with the engine and app `library`, on a database of its own."""
    database = create_database(pg_server, f"reuse_{os.getpid()}")
    info = pg_server.conninfo(database)
    keys = {"NAME": "dbname", "USER": "user", "PASSWORD": "password", "HOST": "host"}
    fields = {key: info[name] for key, name in keys.items()}
    fields["PORT"] = str(info["port"])
    options = {k: v for k, v in info.items() if k in ("sslmode", "sslrootcert")}
    dsn = ", ".join(f"{key!r}: {value!r}" for key, value in fields.items())
    (tmp_path / "othersite_settings.py").write_text(
        SETTINGS.format(database=f"{dsn}, 'OPTIONS': {options!r}")
    )
    (tmp_path / "manage.py").write_text(MANAGE)
    (tmp_path / "sql").mkdir()
    migrations = tmp_path / "library" / "migrations"
    migrations.mkdir(parents=True)
    (tmp_path / "library" / "__init__.py").write_text("")
    (migrations / "__init__.py").write_text("")
    previous: list[tuple[str, str]] = []
    for script, sql in FILES.items():
        (tmp_path / "sql" / script).write_text(textwrap.dedent(sql).lstrip())
        stem = script.removesuffix(".sql")
        (migrations / f"{stem}.py").write_text(
            WRAPPER.format(initial=not previous, dependencies=previous, script=script)
        )
        previous = [("library", stem)]
    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "othersite_settings",
        # The engine from this checkout; the project's own folder first.
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)]),
    }
    yield OtherProject(tmp_path, env, info)
    drop_database(pg_server.conninfo(), database)


def test_another_project_installs_the_engine_and_migrates(other_project: OtherProject) -> None:
    proc = other_project.manage("migrate", "--no-input")
    assert proc.returncode == 0, proc.stdout + proc.stderr

    with psycopg.connect(**other_project.conninfo) as conn:
        history = conn.execute(
            "SELECT installed_rank, version, script, type, success FROM flyway_schema_history "
            "ORDER BY installed_rank"
        ).fetchall()
        columns = conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'books' ORDER BY ordinal_position"
        ).fetchall()
        wrappers = conn.execute(
            "SELECT name FROM django_migrations WHERE app = 'library' ORDER BY id"
        ).fetchall()
    assert history == [
        (1, "1", "V1__create_books_table.sql", "SQL", True),
        (2, "2", "V2__add_books_author.sql", "SQL", True),
    ]
    assert columns == [("id",), ("title",), ("author",)]
    assert wrappers == [("V1__create_books_table",), ("V2__add_books_author",)]

    validate = other_project.manage("sqlmigrations", "validate")
    assert validate.returncode == 0, validate.stdout + validate.stderr
