"""Every command's database failure is one CommandError line: what failed, and what to do."""

from __future__ import annotations

from collections.abc import Iterator
from io import StringIO
from typing import Any

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import DataError, connection, connections

from sqlmigrations.management.base import DatabaseCommand
from sqlmigrations.redact import register_secret

PASSWORD = "Leaky-Passw0rd-91"


@pytest.fixture
def down(django_db_blocker: Any) -> Iterator[str]:
    """A connection alias at a closed port, with a password that must never be shown.

    Outside a database test, so that Django's test case does not forbid the alias.
    """
    settings_dict = {
        **connections["default"].settings_dict,
        "HOST": "127.0.0.1",
        "PORT": "1",
        "USER": "app",
        "PASSWORD": PASSWORD,
        "SETTING": "DATABASE_URL",
        "OPTIONS": {},
    }
    connections.settings["down"] = settings_dict
    try:
        with django_db_blocker.unblock():
            yield "down"
    finally:
        connections["down"].close()
        del connections["down"]
        del connections.settings["down"]


def run(command: Any, *args: str) -> CommandError:
    with pytest.raises(CommandError) as raised:
        call_command(command, *args, stdout=StringIO(), stderr=StringIO())
    return raised.value


@pytest.mark.parametrize(
    "argv",
    [
        ["sqlmigrations", "info", "--database", "down"],
        ["sqlmigrations", "validate", "--database", "down"],
        ["schemadoc", "--check", "--database", "down"],
    ],
)
def test_an_unreachable_database_is_the_same_one_line_for_every_command(
    down: str, argv: list[str]
) -> None:
    err = run(*argv)
    message = str(err)
    assert err.returncode == 1
    assert message.startswith("cannot connect to the database app@127.0.0.1:1/"), message
    assert "(DATABASE_URL): Connection refused. Check DATABASE_URL" in message
    assert "\n" not in message
    assert PASSWORD not in message


class FailingStatement(DatabaseCommand):
    """Run one statement the server refuses; it quotes a secret in its error."""

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--raw", action="store_true", help="through psycopg itself")

    def handle(self, *args: Any, **options: Any) -> None:
        sql = f"SELECT '{PASSWORD}'::integer"
        if options["raw"]:
            params = connection.get_connection_params()
            with psycopg.connect(**params) as conn:
                conn.execute(sql)
        with connection.cursor() as cursor:
            cursor.execute(sql)


@pytest.mark.django_db
@pytest.mark.parametrize("raw", [False, True], ids=["django", "psycopg"])
def test_a_failing_statement_names_the_command_the_role_and_the_fix(raw: bool) -> None:
    register_secret(PASSWORD)
    err = run(FailingStatement(), *(["--raw"] if raw else []))
    settings_dict = connection.settings_dict
    assert err.returncode == 1
    assert str(err).startswith(
        f"test_base_command failed as database user {settings_dict['USER']!r} on database "
        f"{settings_dict['NAME']!r}: invalid input syntax for type integer: "
    ), str(err)
    assert "check that the schema is migrated (`manage.py migrate`)" in str(err)
    assert "MIGRATION_DATABASE_URL" in str(err)
    assert PASSWORD not in str(err)
    assert "********" in str(err)


@pytest.mark.django_db
def test_with_traceback_the_database_error_is_raised_as_is() -> None:
    with pytest.raises(DataError):
        call_command(FailingStatement(), traceback=True, stdout=StringIO())
