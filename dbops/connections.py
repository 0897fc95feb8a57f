"""Point a Django connection at the owner role, for commands that run DDL (D4)."""

from __future__ import annotations

from django.conf import settings
from django.db import connections

OWNER_KEYS = ("NAME", "USER", "PASSWORD", "HOST", "PORT")


def use_migration_role(alias: str = "default") -> bool:
    """Switch `alias` to MIGRATION_DATABASE_URL's role, if set; return whether it did."""
    owner = getattr(settings, "MIGRATION_DATABASE", None)
    if not owner:
        return False
    connection = connections[alias]
    if connection.connection is not None:
        connection.close()
    if getattr(connection, "pool", None) is not None:
        connection.close_pool()
    for key in OWNER_KEYS:
        connection.settings_dict[key] = owner[key]
    connection.settings_dict["SECRET"] = owner.get("SECRET")  # Secrets Manager (dbops.secrets)
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


def connect_or_explain(alias: str = "default", *, setting: str = "DATABASE_URL") -> None:
    """Connect now; on failure raise a CommandError that names the setting and the cause."""
    from django.core.management.base import CommandError
    from django.db.utils import OperationalError

    from dbops.redact import redact

    connection = connections[alias]
    try:
        connection.ensure_connection()
    except OperationalError as err:
        config = connection.settings_dict
        where = (
            f"{config.get('USER') or '?'}@{config.get('HOST') or 'localhost'}:"
            f"{config.get('PORT') or 5432}/{config.get('NAME')}"
        )
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        cause = next((line for line in lines if "failed:" in line), lines[0] if lines else "")
        cause = cause.split("failed: ", 1)[-1] if "failed: " in cause else cause
        raise CommandError(
            redact(
                f"cannot connect to the database {where} ({setting}): {cause}. Check the "
                f"host, port, database, user and password in {setting}, that the server is "
                "running and reachable, and DB_SSLMODE / DB_SSLROOTCERT "
                "(docs/operations.md, 'Connection problems')."
            )
        ) from err
