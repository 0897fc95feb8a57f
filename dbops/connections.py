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
