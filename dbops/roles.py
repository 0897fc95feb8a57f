"""Provision the two roles of DESIGN.md D4: the owner runs DDL, the application role CRUD."""

from __future__ import annotations

from typing import Any

from psycopg import sql

APP_TABLE_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"


def _role_exists(conn: Any, name: str) -> bool:
    row = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]).fetchone()
    return row is not None


def ensure_role(conn: Any, name: str, password: str | None, attributes: str) -> None:
    """Create a login role, or bring an existing one to the given attributes and password."""
    verb = "ALTER" if _role_exists(conn, name) else "CREATE"
    query = sql.SQL("{} ROLE {} WITH " + attributes).format(sql.SQL(verb), sql.Identifier(name))
    if password is not None:
        query = sql.SQL("{} PASSWORD {}").format(query, sql.Literal(password))
    conn.execute(query)


def ensure_database(conn: Any, database: str, owner: str) -> None:
    """Create the database owned by the owner role unless it exists."""
    exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
    if not exists:
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(database), sql.Identifier(owner)
            )
        )


def grant_application_privileges(
    conn: Any, *, database: str, owner: str, app: str, schema: str = "public"
) -> None:
    """Give the application role CRUD on the owner's tables, now and in future migrations."""
    ident = sql.Identifier
    statements = [
        sql.SQL("REVOKE CREATE ON SCHEMA {} FROM PUBLIC").format(ident(schema)),
        sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(ident(database)),
        sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(
            ident(database), ident(app)
        ),
        sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(
            ident(database), ident(owner)
        ),
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(ident(schema), ident(app)),
        sql.SQL("GRANT " + APP_TABLE_PRIVILEGES + " ON ALL TABLES IN SCHEMA {} TO {}").format(
            ident(schema), ident(app)
        ),
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {} TO {}").format(
            ident(schema), ident(app)
        ),
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} GRANT "
            + APP_TABLE_PRIVILEGES
            + " ON TABLES TO {}"
        ).format(ident(owner), ident(schema), ident(app)),
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} "
            "GRANT USAGE, SELECT ON SEQUENCES TO {}"
        ).format(ident(owner), ident(schema), ident(app)),
    ]
    for statement in statements:
        conn.execute(statement)


def provision_cluster(
    conn: Any, *, database: str, owner: tuple[str, str], app: tuple[str, str]
) -> None:
    """As a superuser: create (or update) both login roles and the owner's database."""
    ensure_role(conn, owner[0], owner[1], "LOGIN CREATEDB NOSUPERUSER NOCREATEROLE")
    ensure_role(conn, app[0], app[1], "LOGIN NOCREATEDB NOSUPERUSER NOCREATEROLE")
    ensure_database(conn, database, owner[0])
