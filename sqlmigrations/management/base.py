"""The base of every management command: database failures end in one CommandError line."""

from __future__ import annotations

from typing import Any

import psycopg
from django.core.management.base import BaseCommand, CommandError
from django.db import Error as DjangoDatabaseError

from sqlmigrations.dberrors import database_error_line


class DatabaseCommand(BaseCommand):
    """A command whose connection and database errors become one CommandError (exit 1).

    Usage errors stay Django's (exit 2); a CommandError the command raises itself keeps
    its words and exit status (dbhealth: 2 when the database is unreachable).
    """

    def execute(self, *args: Any, **options: Any) -> Any:
        try:
            return super().execute(*args, **options)
        except (DjangoDatabaseError, psycopg.Error) as err:
            if options.get("traceback"):
                raise
            line = database_error_line(err, self.action(options), _alias(options))
            raise CommandError(line) from err

    def action(self, options: dict[str, Any]) -> str:
        """Name what was being done, for the error line: the command and its subcommand."""
        name = self.__module__.rsplit(".", 1)[-1]
        for key in ("subcommand", "action"):
            if isinstance(options.get(key), str):
                return f"{name} {options[key]}"
        return name


def _alias(options: dict[str, Any]) -> str:
    alias = options.get("database")
    return alias if isinstance(alias, str) else "default"
