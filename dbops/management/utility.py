"""`manage.py`'s runner: Django's, with any command's database failure told in one line."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.core import management
from django.core.management.base import BaseCommand, CommandError

from dbops.connections.config import connect_directly
from dbops.connections.errors import DatabaseUnavailable, one_line
from dbops.connections.replicas import ReplicaIsPrimary
from dbops.connections.secrets import SecretError


class ManagementUtility(management.ManagementUtility):
    """Django's utility; each command it runs reports a database it cannot reach in one line."""

    def fetch_command(self, subcommand: str) -> BaseCommand:
        command = super().fetch_command(subcommand)
        if subcommand != "runserver":
            # One process doing one job: it connects directly unless DB_POOL says otherwise.
            connect_directly()
        # Django's own commands (showmigrations, dumpdata, createsuperuser, ...) connect in
        # many places and let the error out with a traceback: wrap every command's run.
        command.execute = explain_database_errors(command.execute)  # type: ignore[method-assign]
        return command


def execute_from_command_line(argv: list[str] | None = None) -> None:
    """Run a management command as Django's `execute_from_command_line` does."""
    ManagementUtility(argv).execute()


def explain_database_errors(execute: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a failure to connect, however deep, into a CommandError with its one line."""

    @functools.wraps(execute)
    def run(*args: Any, **options: Any) -> Any:
        try:
            return execute(*args, **options)
        except Exception as err:
            line = database_failure(err)
            if line is None or options.get("traceback"):
                raise
            # Keep the command's own exit status for it (dbhealth: 2, unreachable).
            returncode = err.returncode if isinstance(err, CommandError) else 1
            raise CommandError(line, returncode=returncode) from err

    return run


def database_failure(err: BaseException) -> str | None:
    """Return the one line of the connection failure behind `err`, if one is behind it.

    Commands catch database errors and re-raise them with context ("cannot read the schema
    history: ..."); the connection failure is the cause that matters, so the chain is
    followed as Python prints it (the explicit cause, else an unsuppressed context).
    """
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DatabaseUnavailable | ReplicaIsPrimary):
            return str(current)
        if isinstance(current, SecretError):
            return f"cannot connect to the database: {one_line(str(current))}"
        if current.__cause__ is not None or current.__suppress_context__:
            current = current.__cause__
        else:
            current = current.__context__
    return None
