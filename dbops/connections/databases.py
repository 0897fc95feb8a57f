"""Drop a database even while an autovacuum worker is in it: the project's one drop_database."""

from __future__ import annotations

import time
from typing import Any

import psycopg
from psycopg import sql

from dbops.connections.config import ConnInfo

MAINTENANCE_DB = "postgres"


def maintenance(server: ConnInfo, *avoid: str) -> ConnInfo:
    """Where to connect for CREATE/ALTER/DROP DATABASE: none of the databases acted on."""
    return server.on(MAINTENANCE_DB) if server.dbname in avoid else server


def drop_database(server: ConnInfo, name: str, *, timeout: float = 30.0) -> None:
    """DROP DATABASE IF EXISTS name WITH (FORCE), as `server`'s role, from another database.

    FORCE ends the other sessions in the database, but a role that is neither a superuser
    nor a member of pg_signal_backend (the owner role here and on RDS) may not end an
    autovacuum worker: PostgreSQL then refuses with "must be a member of the role whose
    process is being terminated". A plain DROP DATABASE cancels autovacuum workers itself
    and waits up to five seconds for the sessions to go, so on that refusal this tries it,
    then FORCE again, until `timeout`. Any other error (not the owner, say) is raised.
    """
    with psycopg.connect(**maintenance(server, name), autocommit=True) as conn:
        _drop(conn, name, timeout)


def _drop(conn: Any, name: str, timeout: float) -> None:
    ident = sql.Identifier(name)
    force = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident)
    plain = sql.SQL("DROP DATABASE IF EXISTS {}").format(ident)
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn.execute(force)
            return
        except psycopg.errors.InsufficientPrivilege as refused:
            if "member of the role whose process" not in str(refused):
                raise
        try:
            conn.execute(plain)
            return
        except psycopg.errors.ObjectInUse:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)
