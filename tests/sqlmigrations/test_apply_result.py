"""What a `migrate` run reports: the files it applied with their version, outcome and
time, the repeatables, Django's own migrations, or that there was nothing to do."""

from __future__ import annotations

import io
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from dbops.connections.databases import drop_database
from sqlmigrations.applying import MigrateResult
from sqlmigrations.lib.executor import Applied
from tests.conftest import PgServer
from tests.helpers import create_database, direct_settings


class Wrapper:
    """A migration as the progress callback sees it."""

    def __init__(self, name: str, scripts: list[str] | None = None) -> None:
        self.app_label, self.name = "chores", name
        self.sql_scripts = scripts or []


def applied(script: str, version: str | None = "1") -> Applied:
    return Applied(script, version, "applied", 0.002)


def test_a_wrappers_files_count_once_django_reports_it_applied() -> None:
    result = MigrateResult()
    assert result.nothing_to_do

    result.migration_started()
    result.file_applied(applied("V1__a.sql"))
    assert result.files == []  # its transaction may still roll back
    result.migration_applied(Wrapper("V1__a", ["V1__a.sql"]))
    result.migration_started()
    result.file_applied(applied("V2__b.sql", "2"))  # then V2's wrapper fails
    result.migration_started()
    result.migration_applied(Wrapper("0001_initial"))
    result.repeatables.append(applied("R__v.sql", None))

    assert result.scripts == ["V1__a.sql", "R__v.sql"]
    assert result.django_migrations == ["chores.0001_initial"]
    assert not result.nothing_to_do
    assert result.as_json() == {
        "files": [{"script": "V1__a.sql", "version": "1", "outcome": "applied", "ms": 2}],
        "repeatables": [{"script": "R__v.sql", "version": None, "outcome": "applied", "ms": 2}],
        "django_migrations": ["chores.0001_initial"],
        "nothing_to_do": False,
    }


@pytest.fixture
def scratch_alias(
    pg_server: PgServer, django_db_setup: None, django_db_blocker: Any
) -> Iterator[str]:
    """A database alias, as the owner, on a new empty database; removed afterwards."""
    from django.db import connections

    name = create_database(pg_server, f"migrate_{secrets.token_hex(4)}")
    alias = f"scratch_{name}"
    config = connections["default"].settings_dict
    connections.settings[alias] = direct_settings(config, pg_server.conninfo(name))
    try:
        with django_db_blocker.unblock():
            yield alias
            connections[alias].close()
    finally:
        del connections[alias]
        del connections.settings[alias]
        drop_database(pg_server.conninfo(), name)


def run_migrate(alias: str) -> tuple[MigrateResult, str]:
    """Run the migrate command's body in process; return its result and its output."""
    from sqlmigrations.management.commands.migrate import Command

    out = io.StringIO()
    command = Command(stdout=out, stderr=out)
    parser = command.create_parser("manage.py", "migrate")
    command.handle(**vars(parser.parse_args(["--database", alias, "--no-input"])))
    return command.result, out.getvalue()


def test_migrate_returns_what_it_applied_then_that_nothing_was_to_do(
    scratch_alias: str,
) -> None:
    from sqlmigrations import engine

    first, out = run_migrate(scratch_alias)

    versions = [mf for mf in engine.load_files() if mf.kind == "V"]
    assert [a.script for a in first.files] == [mf.script for mf in versions]
    assert [a.version for a in first.files] == [str(mf.name.version) for mf in versions]
    assert {a.outcome for a in first.files} == {"applied"}
    assert all(a.seconds > 0 for a in first.files)
    assert "contenttypes.0001_initial" in first.django_migrations
    assert not any(name.startswith("chores.") for name in first.django_migrations)
    assert not first.nothing_to_do
    assert "Applying chores.V3__create_households_table... OK" in out

    second, out = run_migrate(scratch_alias)

    assert second.nothing_to_do and second.as_json()["nothing_to_do"]
    assert "No migrations to apply." in out
