"""Provision the two roles (docs/architecture.md, D4): owner runs DDL, application role CRUD."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

APP_TABLE_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"
APP_SEQUENCE_PRIVILEGES = "USAGE, SELECT"
# The migration history: the application may read it (health, admin) but never write it.
HISTORY_TABLE = "flyway_schema_history"
# Read-only statistics (every session in pg_stat_activity, pg_stat_statements): what the
# health checks need to see beyond the application's own sessions. No data, no DDL.
MONITORING_ROLE = "pg_monitor"
# What `dbroles check` writes into the probe table (rolled back at the end).
PROBE_MARK = "dbroles check probe"


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
    conn: Any,
    *,
    database: str,
    owner: str,
    app: str,
    schema: str = "public",
    read_only_tables: Sequence[str] = (HISTORY_TABLE,),
) -> None:
    """Give the application role CRUD on the owner's tables, now and in future migrations.

    Only that: CONNECT on the database, USAGE on the schema, SELECT/INSERT/UPDATE/DELETE on
    tables, USAGE/SELECT on sequences, and SELECT alone on `read_only_tables` (the history).
    Anything granted before (TRUNCATE, TEMPORARY, CREATE) is taken back, so running it
    again brings a database to exactly this state.
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
        sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(sch, role),
        sql.SQL("GRANT " + APP_TABLE_PRIVILEGES + " ON ALL TABLES IN SCHEMA {} TO {}").format(
            sch, role
        ),
        sql.SQL("REVOKE ALL ON ALL SEQUENCES IN SCHEMA {} FROM {}").format(sch, role),
        sql.SQL("GRANT " + APP_SEQUENCE_PRIVILEGES + " ON ALL SEQUENCES IN SCHEMA {} TO {}").format(
            sch, role
        ),
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
    for table in read_only_tables:
        exists = conn.execute("SELECT to_regclass(%s)", [f'"{schema}"."{table}"']).fetchone()
        if exists and exists[0] is not None:
            name = ident(schema, table)
            statements.append(sql.SQL("REVOKE ALL ON {} FROM {}").format(name, role))
            statements.append(sql.SQL("GRANT SELECT ON {} TO {}").format(name, role))
    # One transaction: a running application never sees the moment between REVOKE and GRANT.
    with conn.transaction():
        for statement in statements:
            conn.execute(statement)


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


def provision_database(
    conn: Any,
    *,
    owner: str,
    app: str,
    app_password: str | None,
    owner_password: str | None = None,
    schema: str = "public",
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
        grant_application_privileges(conn, database=database, owner=owner, app=app, schema=schema)
    except psycopg.errors.InsufficientPrivilege as err:
        raise ProvisionError(
            f"{owner!r} may not grant on database {database!r} ({err.diag.message_primary}): "
            f"the owner role must own the database and schema {schema!r}"
        ) from None
    finally:
        if owner != me:
            conn.execute("RESET ROLE")
    steps.append(grant_monitoring(conn, app))
    steps.append(
        f"privileges: {app} may CONNECT to {database}, use schema {schema}, "
        f"{APP_TABLE_PRIVILEGES} on its tables (also future ones), read {HISTORY_TABLE}; "
        "nothing else"
    )
    return steps


@dataclass(frozen=True)
class Probe:
    """One statement run as the application role, and whether it should be allowed."""

    label: str
    statement: str
    allowed: bool
    changes_rows: bool = False


@dataclass(frozen=True)
class ProbeResult:
    label: str
    expected: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.label,
            "expected": self.expected,
            "ok": self.ok,
            "detail": self.detail,
        }


def application_role_probes(
    probe_table: str = "migration_test", history_table: str = HISTORY_TABLE
) -> list[Probe]:
    """What the application role must be able to do, and what it must not."""
    t, h = sql.Identifier(probe_table), sql.Identifier(history_table)
    mark = sql.Literal(PROBE_MARK)

    def q(text: str) -> str:
        return sql.SQL(text).format(t=t, h=h, mark=mark).as_string(None)

    return [
        Probe(f"SELECT on {probe_table}", q("SELECT count(*) FROM {t}"), True),
        Probe(f"INSERT on {probe_table}", q("INSERT INTO {t} (name) VALUES ({mark})"), True, True),
        Probe(
            f"UPDATE on {probe_table}",
            q("UPDATE {t} SET name = {mark} WHERE name = {mark}"),
            True,
            True,
        ),
        Probe(f"DELETE on {probe_table}", q("DELETE FROM {t} WHERE name = {mark}"), True, True),
        Probe(f"SELECT on {history_table}", q("SELECT count(*) FROM {h}"), True),
        Probe("CREATE TABLE", q("CREATE TABLE dbroles_probe (id int)"), False),
        Probe("CREATE TEMPORARY TABLE", q("CREATE TEMPORARY TABLE dbroles_probe (id int)"), False),
        Probe(
            f"ALTER TABLE {probe_table}", q("ALTER TABLE {t} ADD COLUMN dbroles_probe int"), False
        ),
        Probe(f"DROP TABLE {probe_table}", q("DROP TABLE {t}"), False),
        Probe(f"TRUNCATE {probe_table}", q("TRUNCATE {t}"), False),
        Probe("CREATE SCHEMA", q("CREATE SCHEMA dbroles_probe"), False),
        Probe(
            f"INSERT on {history_table}",
            q(
                "INSERT INTO {h} (installed_rank, description, type, script,"
                " installed_by, execution_time, success)"
                " VALUES (-1, {mark}, 'SQL', {mark}, current_user, 0, true)"
            ),
            False,
        ),
        Probe(f"UPDATE on {history_table}", q("UPDATE {h} SET success = success"), False),
        Probe(f"DELETE on {history_table}", q("DELETE FROM {h} WHERE installed_rank < 0"), False),
    ]


def _role_facts(conn: Any) -> list[ProbeResult]:
    ssl, attrs, member_of = conn.execute(
        "SELECT (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()),"
        " (SELECT concat_ws(' ', CASE WHEN rolsuper THEN 'SUPERUSER' END,"
        "   CASE WHEN rolcreatedb THEN 'CREATEDB' END,"
        "   CASE WHEN rolcreaterole THEN 'CREATEROLE' END,"
        "   CASE WHEN rolbypassrls THEN 'BYPASSRLS' END,"
        "   CASE WHEN rolreplication THEN 'REPLICATION' END)"
        "  FROM pg_roles WHERE rolname = current_user),"
        " (SELECT array_agg(g.rolname::text ORDER BY g.rolname) FROM pg_auth_members m"
        "  JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member"
        "  WHERE u.rolname = current_user)"
    ).fetchone()
    member_of = member_of or []
    extra_roles = [r for r in member_of if r != MONITORING_ROLE]
    return [
        ProbeResult("connection encrypted", "yes", bool(ssl), "SSL" if ssl else "not encrypted"),
        ProbeResult(
            "role attributes (SUPERUSER, CREATEDB, CREATEROLE, BYPASSRLS, REPLICATION)",
            "none",
            not attrs,
            f"has {attrs}" if attrs else "none",
        ),
        ProbeResult(
            f"membership in other roles (only {MONITORING_ROLE} allowed)",
            "none",
            not extra_roles,
            f"member of {', '.join(extra_roles)}"
            if extra_roles
            else ", ".join(member_of) or "none",
        ),
    ]


def check_application_role(conn: Any, probes: Sequence[Probe]) -> list[ProbeResult]:
    """Run each probe in one transaction that is rolled back; nothing is left behind."""
    results = _role_facts(conn)
    with conn.transaction(force_rollback=True):
        # A misconfigured role could queue for a table lock; never hang the check on one.
        conn.execute("SET LOCAL lock_timeout = '5s'")
        conn.execute("SET LOCAL statement_timeout = '30s'")
        for probe in probes:
            expected = "allowed" if probe.allowed else "denied"
            try:
                with conn.transaction():
                    cursor = conn.execute(probe.statement)
            except psycopg.errors.InsufficientPrivilege:
                ok = not probe.allowed
                detail = "denied" + ("" if ok else ", should be allowed")
            except psycopg.errors.UndefinedTable as err:
                ok = False
                detail = f"error: {err.diag.message_primary}; run `manage.py migrate` first"
            except psycopg.Error as err:
                ok, detail = False, f"error: {err.diag.message_primary or type(err).__name__}"
            else:
                if probe.allowed and probe.changes_rows and cursor.rowcount < 1:
                    ok, detail = False, "allowed but changed no row"
                else:
                    ok = probe.allowed
                    detail = "allowed" + ("" if ok else ", should be denied")
            results.append(ProbeResult(probe.label, expected, ok, detail))
    return results
