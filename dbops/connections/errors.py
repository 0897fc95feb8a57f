"""Point a Django connection at the owner role (D4), and say in one line why one failed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.db import connections

from dbops.connections.waits import bounded, lift_timeouts
from sqlmigrations.dberrors import ConnectionFailed
from sqlmigrations.redact import redact

OWNER_KEYS = ("NAME", "USER", "PASSWORD", "HOST", "PORT")
# The settings key (set by choregarden.settings) naming the variables that configure a
# connection, e.g. "DATABASE_URL" or "MIGRATION_DB_SECRET_ID": messages name it.
SETTING_KEY = "SETTING"
START_LOCAL = "python manage.py devdb start"
RUNBOOK = "docs/operations.md, 'Connection problems'"


class DatabaseUnavailable(ConnectionFailed):
    """A connection could not be opened: no database configured, unreachable, or no login."""


def use_migration_role(alias: str = "default") -> bool:
    """Switch `alias` to MIGRATION_DATABASE_URL's role, if set; return whether it did."""
    owner = getattr(settings, "MIGRATION_DATABASE", None)
    connection = connections[alias]
    if not owner:
        # One URL for both roles: its connections still run the owner's long jobs.
        if bounded(connection.settings_dict):
            connection.close()
            if getattr(connection, "pool", None) is not None:
                connection.close_pool()
            lift_timeouts(connection.settings_dict)
        return False
    if connection.connection is not None:
        connection.close()
    if getattr(connection, "pool", None) is not None:
        connection.close_pool()
    for key in OWNER_KEYS:
        connection.settings_dict[key] = owner[key]
    connection.settings_dict["SECRET"] = owner.get(
        "SECRET"
    )  # Secrets Manager (dbops.connections.secrets)
    connection.settings_dict[SETTING_KEY] = owner.get(SETTING_KEY, "MIGRATION_DATABASE_URL")
    options = {k: v for k, v in owner.get("OPTIONS", {}).items() if k != "pool"}
    # One migrator needs one connection, not a pool of them.
    connection.settings_dict["OPTIONS"] = options
    return True


def without_pool(alias: str = "default") -> None:
    """A one-off command needs one connection: no pool, so a failure is reported at once."""
    connection = connections[alias]
    if getattr(connection, "pool", None) is not None:
        connection.close_pool()
    options = connection.settings_dict.get("OPTIONS", {})
    if "pool" in options:
        connection.close()
        connection.settings_dict["OPTIONS"] = {k: v for k, v in options.items() if k != "pool"}


def connect_or_explain(alias: str = "default") -> None:
    """Connect now, so a command fails before its work with DatabaseUnavailable's one line."""
    connections[alias].ensure_connection()


def configured(config: Mapping[str, Any]) -> bool:
    """Tell whether settings gave this connection an address (not libpq's defaults)."""
    return bool(config.get(SETTING_KEY) or config.get("HOST") or config.get("SECRET"))


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

    local = at_local_cluster(config, params)
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


def advice(setting: str, *, local: bool) -> str:
    """Say what to check, and how to get a local database in development."""
    if local:
        return f"Start it: {START_LOCAL}"
    what = setting or "the database settings"
    text = (
        f"Check {what} (host, port, database, user, password), that the server is running, "
        f"and DB_SSLMODE / DB_SSLROOTCERT ({RUNBOOK})."
    )
    if getattr(settings, "DJANGO_ENV", "") == "development":
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


def at_local_cluster(config: Mapping[str, Any], params: Mapping[str, Any] | None = None) -> bool:
    """Tell whether the connection goes to this checkout's own cluster (`devdb`)."""
    port = getattr(settings, "LOCAL_CLUSTER_PORT", None)
    if port is None:
        return False
    params = params or {}
    host = params.get("host") or config.get("HOST")
    return host in settings.LOCAL_CLUSTER_HOSTS and str(
        params.get("port") or config.get("PORT")
    ) == str(port)
