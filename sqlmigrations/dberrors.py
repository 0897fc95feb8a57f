"""Say in one line why a command's database work failed: what, as whom, where, what to do."""

from __future__ import annotations

from typing import Any

from django.db import connections
from django.db.utils import OperationalError

from sqlmigrations.redact import redact

DEFAULT_ADVICE = (
    "check that the schema is migrated (`manage.py migrate`) and that this role may do it "
    "(schema changes need the owner role: set MIGRATION_DATABASE_URL)"
)
CONNECT_ADVICE = (
    "check the database settings (host, port, database, user, password) and that the "
    "server is running"
)


class ConnectionFailed(OperationalError):
    """A connection could not be opened; the message is the whole explanation."""


def connection_failure(err: BaseException) -> ConnectionFailed | None:
    """Return the failure to connect behind `err`, following the chain as Python prints it."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionFailed):
            return current
        if current.__cause__ is not None or current.__suppress_context__:
            current = current.__cause__
        else:
            current = current.__context__
    return None


def database_error_line(err: BaseException, action: str, alias: str | None = None) -> str:
    """Return the one line for a database error during `action` (e.g. "sqlmigrations repair").

    A failure to connect keeps its own line (it names the address, the setting and the
    fix); any other error names the action, the role and the database, then what to do.
    Every secret is masked.
    """
    failed = connection_failure(err)
    if failed is not None:
        return one_line(redact(str(failed)))
    detail = one_line(redact(str(err))) or type(err).__name__
    if _is_libpq_connect_error(err):
        return f"cannot connect to the database: {detail}; {CONNECT_ADVICE}"
    config: dict[str, Any] = {}
    if alias is not None and alias in connections:
        config = connections[alias].settings_dict
    user, name = config.get("USER"), config.get("NAME")
    who = f" as database user {user!r}" if user else ""
    where = f" on database {name!r}" if name else ""
    return f"{action} failed{who}{where}: {detail}; {DEFAULT_ADVICE}"


def _is_libpq_connect_error(err: BaseException) -> bool:
    """Tell whether psycopg failed to connect (a direct psycopg.connect, not Django's)."""
    import psycopg

    if not isinstance(err, psycopg.OperationalError) or err.sqlstate is not None:
        return False
    text = str(err)
    return text.startswith("connection failed") or "connection to server" in text


def one_line(text: str) -> str:
    return " ".join(text.split())
