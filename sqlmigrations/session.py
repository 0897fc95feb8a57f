"""Refuse to migrate through a transaction pooler: the engine needs a session of its own.

Flyway's advisory lock is held by a session for the whole run, and a file without a
transaction runs its statements one after another on the same session. Behind a
transaction-mode pooler (PgBouncer, RDS Proxy) consecutive transactions may run on
different server connections: the lock would belong to whichever client got that server
connection next, and a file's statements would run on several. So the engine refuses,
before it takes the lock, a connection that:

- its settings mark as a pooler (the DATABASES entry's "POOLER" key, which the project
  sets from DB_POOLER);
- is an RDS Proxy endpoint (`<name>.proxy-<id>.<region>.rds.amazonaws.com`);
- reaches a server that listens on another port than the one connected to: something in
  between answers for it. SQL_MIGRATIONS["ALLOW_PROXY"] = True accepts that when the thing
  in between keeps one server session per client (an SSH tunnel, a port forward).
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings

from sqlmigrations.lib.exceptions import SqlMigrationError

RDS_PROXY_HOST = re.compile(r"\.proxy-[a-z0-9]+\.[a-z0-9-]+\.rds\.amazonaws\.com\.?$", re.I)


class SessionRequired(SqlMigrationError):
    """The migration connection goes through a transaction pooler."""

    def __init__(self, message: str) -> None:
        # About a setting, not a file: the message names it.
        self.path, self.line, self.detail = "", None, message
        Exception.__init__(self, message)


def _setting(connection: Any) -> str:
    return str(connection.settings_dict.get("SETTING") or f"DATABASES[{connection.alias!r}]")


def _fix(setting: str) -> str:
    return (
        f"point {setting} at the database's own address (the RDS instance or cluster "
        "endpoint, port 5432), never at the pooler: migrations connect directly"
    )


def refuse_pooler_by_settings(connection: Any) -> None:
    """Raise SessionRequired when the settings say `connection` is a pooler (no connecting)."""
    config = connection.settings_dict
    setting = _setting(connection)
    pooler = config.get("POOLER")
    if pooler:
        raise SessionRequired(
            f"{setting} is a transaction pooler ({pooler}, DB_POOLER) and migrations would run "
            "through it: the migration lock and files outside a transaction need a session "
            "of their own; give migrations a direct connection (MIGRATION_DATABASE_URL: the "
            "database's own address, never the pooler's)"
        )
    host = str(config.get("HOST") or "")
    if RDS_PROXY_HOST.search(host):
        raise SessionRequired(
            f"{setting} is an RDS Proxy endpoint ({host}), which pools by transaction: the "
            f"migration lock needs a session of its own; {_fix(setting)}"
        )


def require_session(connection: Any) -> None:
    """Raise SessionRequired unless `connection` is a session of the server itself."""
    refuse_pooler_by_settings(connection)
    if settings.SQL_MIGRATIONS.get("ALLOW_PROXY"):
        return
    setting = _setting(connection)
    connection.ensure_connection()
    connected = connection.connection.info.port
    with connection.cursor() as cursor:
        cursor.execute("SELECT inet_server_port()")
        (server_port,) = cursor.fetchone()
    if server_port is not None and connected and int(server_port) != int(connected):
        raise SessionRequired(
            f"{setting} reaches the server through something in between (port {connected} "
            f"answers for a server on port {server_port}), such as PgBouncer: the migration "
            f"lock needs a session of its own; {_fix(setting)}. If it is an SSH tunnel or a port "
            "forward, which keeps one server session per client, set "
            "SQL_MIGRATIONS['ALLOW_PROXY'] = True (MIGRATION_ALLOW_PROXY=true)."
        )
