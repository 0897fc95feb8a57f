"""Provision the two roles (docs/architecture.md, D4): owner runs DDL, application role CRUD."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql

from dbops.roles.privileges import HISTORY_TABLES, Relation, classify

APP_TABLE_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"
APP_SEQUENCE_PRIVILEGES = "USAGE, SELECT"
# Read-only statistics (every session in pg_stat_activity, pg_stat_statements): what the
# health checks need to see beyond the application's own sessions. No data, no DDL.
MONITORING_ROLE = "pg_monitor"
# pg_stat_statements keeps each statement's text, and every pg_monitor member (the
# application role) reads it: a role's password verifier must not stay there.
UNTRACKED = "SET LOCAL pg_stat_statements.track = 'none'"
PASSWORD_STATEMENTS = r"\m(CREATE|ALTER)\s+(ROLE|USER)\M.*\mPASSWORD\s+[^\sN]"


def _role_exists(conn: Any, name: str) -> bool:
    row = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]).fetchone()
    return row is not None


def ensure_role(conn: Any, name: str, password: str | None, attributes: str) -> None:
    """Create a login role, or bring an existing one to the given attributes and password."""
    verb = "ALTER" if _role_exists(conn, name) else "CREATE"
    query = sql.SQL("{} ROLE {} WITH " + attributes).format(sql.SQL(verb), sql.Identifier(name))
    if password is not None:
        # Send libpq's SCRAM verifier, as psql's \password does: the statement (which the
        # server may log) never carries the password itself.
        verifier = conn.pgconn.encrypt_password(password.encode(), name.encode(), b"scram-sha-256")
        query = sql.SQL("{} PASSWORD {}").format(query, sql.Literal(verifier.decode()))
    with conn.transaction():
        try:
            with conn.transaction():
                conn.execute(UNTRACKED)
        except psycopg.errors.InsufficientPrivilege:
            pass  # a superuser's setting: forget_password_statements cleans up after
        conn.execute(query)


def forget_password_statements(conn: Any) -> str | None:
    """Drop role statements with a password from pg_stat_statements; say what is left.

    Returns None when there is nothing to say (no extension, no such statement).
    """
    exists = conn.execute(
        "SELECT to_regclass('pg_stat_statements') IS NOT NULL"
        " AND to_regprocedure('pg_stat_statements_reset(oid, oid, bigint)') IS NOT NULL"
    ).fetchone()[0]
    if not exists:
        return None
    allowed = conn.execute(
        "SELECT has_function_privilege("
        "to_regprocedure('pg_stat_statements_reset(oid, oid, bigint)'), 'EXECUTE')"
    ).fetchone()[0]
    if not allowed:
        found = conn.execute(
            "SELECT count(*) FROM pg_stat_statements WHERE query ~* %s", [PASSWORD_STATEMENTS]
        ).fetchone()[0]
        if not found:
            return None
        return (
            f"pg_stat_statements: {found} role statement(s) with a password verifier remain, "
            "readable by pg_monitor members; run `SELECT pg_stat_statements_reset()` as a "
            "superuser or the RDS master user"
        )
    forgotten = conn.execute(
        "SELECT count(pg_stat_statements_reset(userid, dbid, queryid))"
        " FROM pg_stat_statements WHERE query ~* %s",
        [PASSWORD_STATEMENTS],
    ).fetchone()[0]
    return f"pg_stat_statements: forgot {forgotten} role statement(s)" if forgotten else None


def ensure_database(conn: Any, database: str, owner: str) -> None:
    """Create the database owned by the owner role unless it exists."""
    exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
    if not exists:
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(database), sql.Identifier(owner)
            )
        )


def _revoke_all(conn: Any, app: str, relations: Sequence[Relation]) -> None:
    role = sql.Identifier(app)
    for is_sequence in (False, True):
        names = [r.identifier for r in relations if r.is_sequence == is_sequence]
        if names:
            conn.execute(
                sql.SQL("REVOKE ALL ON {} {} FROM {}").format(
                    sql.SQL("SEQUENCE" if is_sequence else "TABLE"), sql.SQL(", ").join(names), role
                )
            )


def _grant(conn: Any, privileges: str, kind: str, relations: Sequence[Relation], app: str) -> None:
    if relations:
        conn.execute(
            sql.SQL("GRANT " + privileges + " ON {} {} TO {}").format(
                sql.SQL(kind),
                sql.SQL(", ").join(r.identifier for r in relations),
                sql.Identifier(app),
            )
        )


def grant_application_privileges(
    conn: Any,
    *,
    database: str,
    owner: str,
    app: str,
    schema: str = "public",
    history_tables: Sequence[str] = HISTORY_TABLES,
) -> list[Relation]:
    """Give the application role CRUD on the application tables, now and in future migrations.

    Only that: CONNECT on the database, USAGE on the schema, SELECT/INSERT/UPDATE/DELETE
    on the application tables (dbops.roles.privileges: the owner's, no extension's, no history),
    USAGE/SELECT on their sequences, and SELECT alone on the migration history tables
    (and their sequences).
    Nothing on extension members or other roles' objects. Anything granted before
    (TRUNCATE, TEMPORARY, CREATE, writes on the history or on pg_stat_statements) is
    taken back, so running it again brings a database to exactly this state. Returns
    the relations where the role keeps grants that the connected role may not take back
    (another role's objects, when not run as a superuser).
    """
    ident = sql.Identifier
    db, sch, own, role = ident(database), ident(schema), ident(owner), ident(app)
    statements = [
        sql.SQL("REVOKE CREATE ON SCHEMA {} FROM PUBLIC").format(sch),
        sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(db),
        sql.SQL("REVOKE ALL ON DATABASE {} FROM {}").format(db, role),
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(db, role),
        sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(db, own),
        sql.SQL("REVOKE ALL ON SCHEMA {} FROM {}").format(sch, role),
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sch, role),
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} REVOKE ALL ON TABLES FROM {}"
        ).format(own, sch, role),
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} GRANT "
            + APP_TABLE_PRIVILEGES
            + " ON TABLES TO {}"
        ).format(own, sch, role),
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} REVOKE ALL ON SEQUENCES FROM {}"
        ).format(own, sch, role),
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} GRANT "
            + APP_SEQUENCE_PRIVILEGES
            + " ON SEQUENCES TO {}"
        ).format(own, sch, role),
    ]
    # One transaction: a running application never sees the moment between REVOKE and GRANT.
    with conn.transaction():
        for statement in statements:
            conn.execute(statement)
        relations = classify(
            conn, app=app, owner=owner, schema=schema, history_tables=history_tables
        )
        _revoke_all(conn, app, [r for r in relations if r.granted_to_app and r.ours])
        application = [r for r in relations if r.kind == "application"]
        _grant(
            conn, APP_TABLE_PRIVILEGES, "TABLE", [r for r in application if not r.is_sequence], app
        )
        _grant(
            conn,
            APP_SEQUENCE_PRIVILEGES,
            "SEQUENCE",
            [r for r in application if r.is_sequence],
            app,
        )
        # Read-only: SELECT on a sequence reads its last value (the health checks), no more.
        history = [r for r in relations if r.kind == "history"]
        _grant(conn, "SELECT", "TABLE", [r for r in history if not r.is_sequence], app)
        _grant(conn, "SELECT", "SEQUENCE", [r for r in history if r.is_sequence], app)
    return [r for r in relations if r.kind == "other" and r.granted_to_app and not r.ours]


def grant_monitoring(conn: Any, app: str) -> str:
    """Make the application role a member of pg_monitor; return what happened."""
    member = conn.execute(
        "SELECT pg_has_role(%s, %s, 'MEMBER')", [app, MONITORING_ROLE]
    ).fetchone()[0]
    if member:
        return f"{MONITORING_ROLE}: {app} is a member (statistics only)"
    try:
        with conn.transaction():
            conn.execute(
                sql.SQL("GRANT {} TO {}").format(
                    sql.Identifier(MONITORING_ROLE), sql.Identifier(app)
                )
            )
    except psycopg.errors.InsufficientPrivilege:
        return (
            f"{MONITORING_ROLE}: not granted (needs a superuser or the RDS master, --url); "
            "the health checks will see only the application's own sessions"
        )
    return f"{MONITORING_ROLE}: granted to {app} (statistics only)"


def set_role_timeouts(conn: Any, app: str, database: str, timeouts: Mapping[str, int]) -> str:
    """Make the timeouts (ms) the application role's defaults in the database; say what happened.

    Each application connection also sets them (libpq options): the defaults bound any
    other client of the role (a psql session, a script).
    """
    ident = sql.Identifier
    try:
        with conn.transaction():
            for name, value in timeouts.items():
                conn.execute(
                    sql.SQL("ALTER ROLE {} IN DATABASE {} SET {} = {}").format(
                        ident(app), ident(database), ident(name), sql.Literal(f"{value}ms")
                    )
                )
    except psycopg.errors.InsufficientPrivilege:
        return (
            f"timeouts: not made {app}'s defaults (needs CREATEROLE: --url with the RDS master "
            "user); the application's connections set them themselves"
        )
    listed = ", ".join(f"{name} {value}ms" for name, value in timeouts.items())
    return f"timeouts: {app}'s defaults in {database}: {listed}"


def provision_cluster(
    conn: Any, *, database: str, owner: tuple[str, str], app: tuple[str, str]
) -> None:
    """As a superuser: create (or update) both login roles and the owner's database."""
    ensure_role(conn, owner[0], owner[1], "LOGIN CREATEDB NOSUPERUSER NOCREATEROLE")
    ensure_role(conn, app[0], app[1], "LOGIN NOCREATEDB NOSUPERUSER NOCREATEROLE")
    grant_monitoring(conn, app[0])
    ensure_database(conn, database, owner[0])


class ProvisionError(RuntimeError):
    """The roles or privileges could not be put in place."""


class ProvisionIncomplete(ProvisionError):
    """Everything was done but taking back some grants that the connected role may not."""

    def __init__(self, message: str, steps: list[str], database: str) -> None:
        super().__init__(message)
        self.steps, self.database = steps, database


def provision_database(
    conn: Any,
    *,
    owner: str,
    app: str,
    app_password: str | None,
    owner_password: str | None = None,
    schema: str = "public",
    history_tables: Sequence[str] = HISTORY_TABLES,
    timeouts: Mapping[str, int] | None = None,
) -> list[str]:
    """Bring the connected database to D4's two roles; return one line per step."""
    if owner == app:
        raise ProvisionError(
            f"the owner and the application role are both {app!r}: DATABASE_URL must name the "
            "application role and MIGRATION_DATABASE_URL the owner role"
        )
    me, database, superuser = conn.execute(
        "SELECT current_user, current_database(), rolsuper FROM pg_roles"
        " WHERE rolname = current_user"
    ).fetchone()
    steps: list[str] = []
    # Only a superuser may even mention SUPERUSER; a CREATEROLE role can do the rest.
    common = "LOGIN NOCREATEROLE" + (" NOSUPERUSER NOREPLICATION NOBYPASSRLS" if superuser else "")
    for name, password, attributes in (
        (owner, owner_password, common.replace("LOGIN", "LOGIN CREATEDB")),
        (app, app_password, common.replace("LOGIN", "LOGIN NOCREATEDB")),
    ):
        if name == me:
            steps.append(f"role {name}: the connected role, left as it is")
            continue
        existed = _role_exists(conn, name)
        try:
            with conn.transaction():
                ensure_role(conn, name, password, attributes)
        except psycopg.errors.InsufficientPrivilege:
            if not existed:
                raise ProvisionError(
                    f"role {name!r} does not exist and {me!r} may not create roles: run "
                    "`manage.py dbroles provision --url <admin URL>` with a role that has "
                    "CREATEROLE (the RDS master user)"
                ) from None
            steps.append(f"role {name}: exists; not updated ({me} lacks CREATEROLE)")
            continue
        verb = "updated" if existed else "created"
        steps.append(f"role {name}: {verb}" + (", password set" if password else ""))
    db_owner = conn.execute(
        "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
    ).fetchone()[0]
    if db_owner != owner:
        # The owner role must own the database, and with it (PostgreSQL 15+) schema public.
        try:
            with conn.transaction():
                conn.execute(
                    sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                        sql.Identifier(database), sql.Identifier(owner)
                    )
                )
        except psycopg.errors.InsufficientPrivilege:
            raise ProvisionError(
                f"database {database!r} is owned by {db_owner!r}, not by the owner role "
                f"{owner!r}, and {me!r} may not change that: run `ALTER DATABASE {database} "
                f"OWNER TO {owner}` as {db_owner!r} or a superuser"
            ) from None
        steps.append(f"database {database}: owner changed from {db_owner} to {owner}")
    if timeouts:
        steps.append(set_role_timeouts(conn, app, database, timeouts))
    if owner != me:
        # Default privileges are per creating role: the owner's future tables are the ones
        # migrations make, so set them up while acting as the owner.
        try:
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(owner)))
        except psycopg.errors.InsufficientPrivilege:
            raise ProvisionError(
                f"{me!r} cannot act as the owner role {owner!r}: connect as {owner!r} "
                f"(MIGRATION_DATABASE_URL) or as a superuser"
            ) from None
    try:
        kept = grant_application_privileges(
            conn,
            database=database,
            owner=owner,
            app=app,
            schema=schema,
            history_tables=history_tables,
        )
    except psycopg.errors.InsufficientPrivilege as err:
        raise ProvisionError(
            f"{owner!r} may not grant on database {database!r} ({err.diag.message_primary}): "
            f"the owner role must own the database and schema {schema!r}"
        ) from None
    finally:
        if owner != me:
            conn.execute("RESET ROLE")
    if kept and owner != me:
        # Grants on another role's objects (pg_stat_statements' views, made by a superuser)
        # are the connected role's to take back, if anyone's.
        with conn.transaction():
            _revoke_all(conn, app, kept)
        kept = [
            r
            for r in classify(
                conn, app=app, owner=owner, schema=schema, history_tables=history_tables
            )
            if r.kind == "other" and r.granted_to_app
        ]
    steps.append(grant_monitoring(conn, app))
    forgotten = forget_password_statements(conn)
    if forgotten:
        steps.append(forgotten)
    steps.append(
        f"privileges: {app} may CONNECT to {database}, use schema {schema}, "
        f"{APP_TABLE_PRIVILEGES} on its tables (also future ones), read "
        f"{' and '.join(history_tables)}; nothing else"
    )
    if kept:
        names = ", ".join(f"{r.qualified} ({r.reason})" for r in kept)
        raise ProvisionIncomplete(
            f"{app} keeps grants on {names}, which {me} may not take back: run `manage.py "
            "dbroles provision --url <URL of a superuser or the RDS master user>`",
            steps,
            database,
        )
    return steps
