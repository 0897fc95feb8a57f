"""Databases as whole objects: names, what is in and connected to one, create, swap, drop.

`restore --force` never drops the database it replaces before the new one is complete:
it restores into a scratch database, then renames both in one transaction (ALTER
DATABASE ... RENAME is transactional), so the target name always holds either the old
database or the new one, and the old one is dropped only after the swap committed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from dbops.backups import BackupError
from dbops.connections.config import ConnInfo
from dbops.connections.databases import maintenance

NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
RESERVED = {"postgres", "template0", "template1"}
# The names a restore gives its scratch database and the database it replaced.
# Settings whose value is a list (pg_dump's GUC_LIST_QUOTE variables).
LIST_SETTINGS = {"search_path", "temp_tablespaces", "local_preload_libraries",
                 "session_preload_libraries"}  # fmt: skip
SCRATCH_INFIX = "_restore_"
ASIDE_INFIX = "_old_"
PREFIX_LENGTH = 38  # + "_restore_" and 8 hex digits, or "_old_" and a UTC stamp: <= 63

SESSIONS = """
SELECT pid, usename, application_name, client_addr::text FROM pg_stat_activity
WHERE datname = %s AND pid <> pg_backend_pid()
  -- Another role's backend_type is hidden from us; autovacuum has no role at all.
  AND (backend_type = 'client backend' OR (backend_type IS NULL AND usesysid IS NOT NULL))
ORDER BY pid
"""
USER_RELATIONS = """
SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
"""
DATABASE = """
SELECT pg_get_userbyid(d.datdba), d.datdba = r.oid OR r.rolsuper, d.datconnlimit,
       shobj_description(d.oid, 'pg_database')
FROM pg_database d, pg_roles r WHERE d.datname = %s AND r.rolname = current_user
"""
ACL = """
SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END,
       a.privilege_type, a.is_grantable
FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = %s
"""
SETTINGS = """
SELECT s.setrole, CASE WHEN s.setrole = 0 THEN '' ELSE pg_get_userbyid(s.setrole) END,
       s.setconfig
FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = %s
"""


@dataclass(frozen=True)
class Session:
    pid: int
    user: str | None
    application: str | None
    client: str | None

    def __str__(self) -> str:
        parts = [self.user or "another role", self.application or "no application_name"]
        if self.client:
            parts.append(f"from {self.client}")
        return f"pid {self.pid} ({', '.join(parts)})"


@dataclass
class TargetState:
    name: str
    exists: bool
    relations: int = 0
    owner: str = ""
    mine: bool = False  # owned by this role (or this role is a superuser)
    sessions: tuple[Session, ...] = ()


def check_database_name(name: str) -> str:
    """Refuse a --database value that is not a plain lower-case identifier."""
    if not NAME.match(name):
        raise BackupError(
            f"--database {name!r} is not a database name this command uses: lower-case "
            "letters, digits and underscores, starting with a letter or underscore, at "
            "most 63 characters (e.g. choregarden_restored)."
        )
    if name in RESERVED:
        raise BackupError(f"--database {name}: {name} is PostgreSQL's own; use another name.")
    return name


def scratch_name(target: str, token: str) -> str:
    return f"{target[:PREFIX_LENGTH]}{SCRATCH_INFIX}{token}"


def aside_name(target: str, stamp: str) -> str:
    return f"{target[:PREFIX_LENGTH]}{ASIDE_INFIX}{stamp}"


def connect(admin: ConnInfo, *avoid: str) -> psycopg.Connection[Any]:
    return psycopg.connect(**maintenance(admin, *avoid), autocommit=True)


def sessions(conn: psycopg.Connection[Any], name: str) -> tuple[Session, ...]:
    """Client sessions connected to `name` other than ours (autovacuum does not count)."""
    return tuple(Session(*row) for row in conn.execute(SESSIONS, [name]).fetchall())


def can_create_databases(admin: ConnInfo) -> bool:
    with psycopg.connect(**admin) as conn:
        row = conn.execute(
            "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
    return bool(row and row[0])


def inspect(admin: ConnInfo, name: str) -> TargetState:
    """Whether `name` exists, what is in it, who owns it and who is connected."""
    with connect(admin, name) as conn:
        row = conn.execute(DATABASE, [name]).fetchone()
        if row is None:
            return TargetState(name, exists=False)
        connected = sessions(conn, name)
    with psycopg.connect(**admin.on(name)) as conn:
        counted = conn.execute(USER_RELATIONS).fetchone()
    relations = int(counted[0]) if counted else 0
    return TargetState(name, True, relations, str(row[0]), bool(row[1]), connected)


def leftovers(admin: ConnInfo, target: str) -> list[str]:
    """Scratch and replaced databases that killed restores into `target` left behind."""
    prefix = target[:PREFIX_LENGTH]
    pattern = rf"^{re.escape(prefix)}({SCRATCH_INFIX}[0-9a-f]{{8}}|{ASIDE_INFIX}\d{{8}}T\d{{6}}Z)$"
    with connect(admin, target) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname ~ %s ORDER BY 1", [pattern]
        ).fetchall()
    return [row[0] for row in rows]


def create_database(admin: ConnInfo, name: str) -> None:
    with connect(admin, name) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def copy_properties(admin: ConnInfo, old: str, new: str) -> None:
    """Give `new` what `old` has as a database: owner, privileges, settings, limit, comment.

    pg_dump without --create carries none of these, and the application role's CONNECT
    (dbroles revokes PUBLIC's) must survive the swap.
    """
    ident = sql.Identifier(new)
    with connect(admin, old, new) as conn:
        row = conn.execute(DATABASE, [old]).fetchone()
        assert row is not None
        owner, _mine, limit, comment = row
        acl = conn.execute(ACL, [old]).fetchall()
        settings = conn.execute(SETTINGS, [old]).fetchall()
        statements = [
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(ident, sql.Identifier(owner)),
            sql.SQL("ALTER DATABASE {} CONNECTION LIMIT {}").format(ident, sql.Literal(limit)),
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(ident, sql.Literal(comment)),
        ]
        if acl:
            statements.append(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(ident))
            for grantee, privilege, grantable in acl:
                statements.append(
                    sql.SQL("GRANT {} ON DATABASE {} TO {}{}").format(
                        sql.SQL(privilege),
                        ident,
                        sql.SQL("PUBLIC") if grantee == "PUBLIC" else sql.Identifier(grantee),
                        sql.SQL(" WITH GRANT OPTION") if grantable else sql.SQL(""),
                    )
                )
        for role_oid, role, config in settings:
            for item in config or []:
                key, _, value = item.partition("=")
                target = (
                    sql.SQL("ALTER DATABASE {}").format(ident)
                    if role_oid == 0
                    else sql.SQL("ALTER ROLE {} IN DATABASE {}").format(sql.Identifier(role), ident)
                )
                statements.append(
                    sql.SQL("{} SET {} = {}").format(
                        target, sql.Identifier(key), _value(key, value)
                    )
                )
        with conn.transaction():
            for statement in statements:
                conn.execute(statement)


def _value(key: str, value: str) -> sql.Composable:
    if key not in LIST_SETTINGS:
        return sql.Literal(value)
    # A list is stored as its elements, each quoted as an identifier where it needs it.
    items = [item.strip() for item in value.split(",") if item.strip()]
    return sql.SQL(", ").join(sql.Identifier(item.strip('"')) for item in items)


def swap(admin: ConnInfo, target: str, scratch: str, aside: str) -> None:
    """Rename target to aside and scratch to target, in one transaction."""
    with connect(admin, target, scratch, aside) as conn, conn.transaction():
        conn.execute(
            sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                sql.Identifier(target), sql.Identifier(aside)
            )
        )
        conn.execute(
            sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                sql.Identifier(scratch), sql.Identifier(target)
            )
        )


def rename(admin: ConnInfo, old: str, new: str) -> None:
    with connect(admin, old, new) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                sql.Identifier(old), sql.Identifier(new)
            )
        )
