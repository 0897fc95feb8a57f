"""System checks of the database platform (ids dbops.E0xx / W0xx are stable)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured


@register()
def check_database_configured(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Report a project with no database: no DATABASE_URL and no local cluster yet."""
    from dbops.connections.config import configured

    try:
        if configured(settings.DATABASES["default"]):
            return []
    except ImproperlyConfigured as err:  # the local cluster's folder is not safe to use
        return [Error(str(err), hint="Set DEVDB_DIR to a folder of your own.", id="dbops.E001")]
    return [
        Error(
            "No database is configured.",
            hint="Run `python manage.py devdb start` to create the local database "
            "(`make run` does it for you), or set DATABASE_URL.",
            id="dbops.E001",
        )
    ]


@register()
def check_ssl_root_certificates(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Report an sslrootcert that is not a readable file, before the first connection fails.

    libpq only opens the file when it connects, and then says "could not read root
    certificate file" for every request; this names the database and the setting at start.
    """
    errors = []
    for alias, config in settings.DATABASES.items():
        options = config.get("OPTIONS", {})
        path = options.get("sslrootcert")
        if not path or options.get("sslmode") not in ("verify-ca", "verify-full"):
            continue
        if not Path(path).is_file() or not os.access(path, os.R_OK):
            errors.append(
                Error(
                    f"The CA bundle for database {alias!r} is not a readable file: {path}",
                    hint="Set DB_SSLROOTCERT to the CA bundle that signed the server's "
                    "certificate (RDS: global-bundle.pem; the local cluster: "
                    "var/devdb/certs/ca.crt, written by `manage.py devdb start`).",
                    id="dbops.E009",
                )
            )
    return errors


@register(Tags.database)
def check_replica_is_a_standby(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[CheckMessage]:
    """Refuse a replica URL that points at a writable server (`check --database replica`)."""
    from dbops.connections.replicas import REPLICA, verify_at_start

    if not databases or REPLICA not in databases or REPLICA not in settings.DATABASES:
        return []
    problem = verify_at_start()
    if problem is None:
        return []
    refused, message = problem
    if refused:
        return [Error(message, id="dbops.E030")]
    return [Warning(message, id="dbops.W031")]


@register(deploy=True)
def check_migrations_bypass_the_pooler(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """`check --deploy`: behind a pooler, migrations need a URL of their own (a direct one)."""
    from dbops.connections.config import OWNER_ALIAS

    owner = settings.DATABASES.get(OWNER_ALIAS, {})
    if not getattr(settings, "DB_POOLER", "") or not owner.get("POOLER"):
        return []
    return [
        Warning(
            f"DB_POOLER={settings.DB_POOLER} and no MIGRATION_DATABASE_URL (or "
            "MIGRATION_DB_SECRET_ID): migrations would go through the pooler, and `migrate` "
            "refuses that.",
            hint="Set MIGRATION_DATABASE_URL to the database's own address (the RDS "
            "instance or cluster endpoint), as the owner role, for the deploy-time migrate.",
            id="dbops.W032",
        )
    ]
