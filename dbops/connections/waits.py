"""Bounded waits: the application role's statement, lock and idle-in-transaction timeouts.

Every connection of the application role (DATABASE_URL / DB_SECRET_ID, the replica) sends
the three timeouts in libpq's `options` (settings.DB_TIMEOUTS), so whatever the role's
defaults, a request never waits on the database longer than them; `dbroles provision`
also makes them the role's defaults in the database, for any other client of the role.
The owner role (migrate, backups, partitions) has none: its jobs legitimately run long
and set their own (the migration executor's budget, `partitions`' lock timeout). A page or
job of the application role that must run longer says so: `with statement_timeout("5min")`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlmigrations.lib.lockwait import parse_duration

# PostgreSQL parameter -> the setting that gives its value.
TIMEOUTS = {
    "statement_timeout": "DB_STATEMENT_TIMEOUT",
    "lock_timeout": "DB_LOCK_TIMEOUT",
    "idle_in_transaction_session_timeout": "DB_IDLE_IN_TRANSACTION_TIMEOUT",
}
_OURS = re.compile(r"\s*-c\s*(" + "|".join(TIMEOUTS) + r")=\S*")


class DurationError(ValueError):
    """A timeout setting is not a duration PostgreSQL understands."""


def duration_ms(name: str, raw: str) -> int:
    """Parse "30s", "500ms", "2min" or "0" (off) into milliseconds (the engine's parser)."""
    try:
        return parse_duration(raw, what=name, example="30s", off="the timeout")
    except ValueError as err:
        raise DurationError(f"{err}.") from None


def session_options(timeouts: Mapping[str, int], existing: str = "") -> str:
    """Return libpq `options` that set the timeouts (in ms), then whatever `existing` sets."""
    ours = " ".join(f"-c {name}={value}" for name, value in timeouts.items())
    return f"{ours} {without_timeouts(existing)}".strip()


def without_timeouts(options: str) -> str:
    """Return libpq `options` without the timeouts `session_options` put in."""
    return _OURS.sub("", options).strip()


def lift_timeouts(settings_dict: dict[str, Any]) -> None:
    """Drop the timeouts from a connection's settings (the owner's jobs run as long as needed)."""
    options = dict(settings_dict.get("OPTIONS", {}))
    rest = without_timeouts(str(options.get("options", "")))
    if rest:
        options["options"] = rest
    else:
        options.pop("options", None)
    settings_dict["OPTIONS"] = options


@contextmanager
def statement_timeout(timeout: str | int | None, using: str = "default") -> Iterator[None]:
    """Run the block in a transaction with another statement timeout (None: no limit).

    The named exception for a page or job that legitimately runs long; `timeout` is
    PostgreSQL's syntax ("5min") or milliseconds. SET LOCAL ends with the transaction, so
    the pooled connection goes back with the configured timeout. Also a decorator.
    """
    from django.db import connections, transaction

    value = "0" if timeout is None else str(timeout)
    with transaction.atomic(using=using):
        with connections[using].cursor() as cursor:
            cursor.execute("SELECT set_config('statement_timeout', %s, true)", [value])
        yield


def current(conn: Any) -> dict[str, str]:
    """Return the session's value of each timeout (psycopg connection), as SHOW prints it."""
    return {name: str(conn.execute(f"SHOW {name}").fetchone()[0]) for name in TIMEOUTS}


def role_defaults(conn: Any) -> dict[str, str]:
    """Return the timeouts set for the connected role in this database or in all (ALTER ROLE)."""
    rows = conn.execute(
        "SELECT unnest(setconfig) FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = "
        "s.setrole WHERE r.rolname = current_user AND s.setdatabase IN (0, "
        "(SELECT oid FROM pg_database WHERE datname = current_database())) "
        "ORDER BY s.setdatabase"
    ).fetchall()
    found: dict[str, str] = {}
    for (item,) in rows:  # the database's own setting comes last and wins
        name, _, value = str(item).partition("=")
        if name in TIMEOUTS:
            found[name] = value
    return found
