"""Say in one line why a connection failed: where, which setting, the cause, what to do."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.db import connections

from dbops.connections.config import LOCAL_KEY, SETTING_KEY, at_local_cluster
from sqlmigrations.dberrors import ConnectionFailed
from sqlmigrations.redact import redact

START_LOCAL = "python manage.py devdb start"
RUNBOOK = "docs/operations.md, 'Connection problems'"


class DatabaseUnavailable(ConnectionFailed):
    """A connection could not be opened: no database configured, unreachable, or no login."""


def connect_or_explain(alias: str = "default") -> None:
    """Connect now, so a command fails before its work with DatabaseUnavailable's one line."""
    connections[alias].ensure_connection()


def not_configured() -> DatabaseUnavailable:
    """The error for a connection that settings left without a database."""
    return DatabaseUnavailable(
        "no database is configured: set DATABASE_URL (or DB_SECRET_ID), or create and start "
        f"the local database: {START_LOCAL}"
    )


def unavailable(
    alias: str,
    config: Mapping[str, Any],
    err: BaseException,
    params: Mapping[str, Any] | None = None,
) -> DatabaseUnavailable:
    """Turn a failed connect into one line: where, which setting, the cause, what to do.

    `params` are the connection keywords when they were built (with a secret's login and
    address filled in); the settings are the fallback. No password is ever part of it.
    """
    from psycopg_pool import PoolTimeout

    from dbops.connections.secrets import SecretError

    params = params or {}
    local = bool(config.get(LOCAL_KEY)) or _at_local_cluster(config, params)
    setting = str(config.get(SETTING_KEY) or "")
    which = "the local database" if local else "the database"
    named = f" ({setting})" if setting and not local else ""
    head = f"cannot connect to {which} {address(config, params)}".rstrip() + named
    if isinstance(err, SecretError):
        # The secret's message names the secret, its setting and the fix.
        return DatabaseUnavailable(redact(f"{head}: {one_line(str(err))}"))
    if isinstance(err, PoolTimeout):
        return DatabaseUnavailable(redact(f"{head}: {one_line(str(err))}"))
    return DatabaseUnavailable(redact(f"{head}: {cause(err)}. {advice(setting, local=local)}"))


SETTING_NAME = re.compile(r"[A-Z][A-Z0-9_]*\b")


def advice(setting: str, *, local: bool) -> str:
    """Say what to check, and how to get a local database in development."""
    if local:
        return f"Start it: {START_LOCAL}"
    what = setting or "the database settings"
    text = (
        f"Check {what} (host, port, database, user, password), that the server is running, "
        f"and DB_SSLMODE / DB_SSLROOTCERT ({RUNBOOK})."
    )
    # Only a setting can be unset: not "the restored instance" (a command's own server).
    if getattr(settings, "DJANGO_ENV", "") == "development" and SETTING_NAME.match(what):
        text += f" Or unset {what} and use the local database: {START_LOCAL}"
    return text


def cause(err: BaseException) -> str:
    """Return libpq's reason from a connection error, without the address or its hints.

    libpq says `connection to server at "h" (1.2.3.4), port 5432 failed: FATAL:  password
    authentication failed for user "u"`, then hint lines; one such line per address tried.
    """
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    first = next((line for line in lines if "failed: " in line), lines[0] if lines else "")
    reason = first.rsplit("failed: ", 1)[-1] if "failed: " in first else first
    for prefix in ("FATAL:", "ERROR:"):
        reason = reason.removeprefix(prefix).strip()
    return reason.rstrip(".") or type(err).__name__


def one_line(text: str) -> str:
    return " ".join(text.split())


def address(config: Mapping[str, Any], params: Mapping[str, Any] | None = None) -> str:
    """Return user@host:port/database from the connection keywords or the settings.

    Only what is known: before a secret is read, its host and user are not, and a guess
    ("localhost") would send someone to the wrong server.
    """
    params = params or {}
    user = params.get("user") or config.get("USER") or ""
    host = params.get("host") or config.get("HOST") or ""
    port = params.get("port") or config.get("PORT") or 5432
    name = params.get("dbname") or config.get("NAME") or ""
    if not host:
        return str(name)
    return f"{user + '@' if user else ''}{host}:{port}/{name or 'postgres'}"


def _at_local_cluster(config: Mapping[str, Any], params: Mapping[str, Any]) -> bool:
    """Tell whether the connection goes to this checkout's own cluster (`devdb`)."""
    try:
        return (
            at_local_cluster(
                params.get("host") or config.get("HOST"), params.get("port") or config.get("PORT")
            )
            is not None
        )
    except Exception:  # noqa: BLE001 - an unreadable cluster folder must not hide the cause
        return False
