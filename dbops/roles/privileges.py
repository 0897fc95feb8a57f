"""What each relation of the database is to the application role, read from the catalog.

An application table belongs to the owner role (the database's owner), is no member of
an extension, and is neither migration history table (Flyway's nor Django's) nor a
sequence of one. The application role gets CRUD on those and on nothing else it could
write: provisioning grants from this list, and `dbroles check` proves it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import sql

FLYWAY_HISTORY_TABLE = "flyway_schema_history"
DJANGO_HISTORY_TABLE = "django_migrations"
HISTORY_TABLES = (FLYWAY_HISTORY_TABLE, DJANGO_HISTORY_TABLE)
# Write privileges on a table or view, and on a sequence (nextval, setval).
TABLE_WRITES = "INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER"
SEQUENCE_WRITES = "USAGE, UPDATE"

# Every relation outside the system schemas, with the extension that created
# it (pg_depend 'e') and the table a sequence belongs to (serial or identity: 'a', 'i').
_RELATIONS = """
SELECT n.nspname, c.relname, c.relkind, pg_get_userbyid(c.relowner),
       (SELECT x.extname FROM pg_depend d JOIN pg_extension x ON x.oid = d.refobjid
         WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
           AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e' LIMIT 1),
       (SELECT t.relname FROM pg_depend d JOIN pg_class t ON t.oid = d.refobjid
         WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
           AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') LIMIT 1),
       EXISTS (SELECT 1 FROM aclexplode(c.relacl) a
                WHERE a.grantee = (SELECT oid FROM pg_roles WHERE rolname = %(app)s)),
       CASE WHEN c.relkind = 'S' THEN has_sequence_privilege(%(app)s, c.oid, %(seq)s)
            ELSE has_table_privilege(%(app)s, c.oid, %(table)s) END,
       pg_has_role(c.relowner, 'USAGE')
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)'
   AND (%(schema)s::text IS NULL OR n.nspname = %(schema)s)
 ORDER BY 1, 2
"""


@dataclass(frozen=True)
class Relation:
    """A table, view or sequence, and what the application role holds on it."""

    schema: str
    name: str
    relkind: str
    owner: str
    extension: str | None
    owned_by: str | None
    granted_to_app: bool  # the role appears in the relation's ACL itself
    app_can_write: bool  # by any route: its own grants, PUBLIC, a role it is a member of
    ours: bool  # the connected role may grant and revoke on it (owns it, or is a superuser)
    kind: str = ""
    reason: str = ""

    @property
    def identifier(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def is_sequence(self) -> bool:
        return self.relkind == "S"


def database_owner(conn: Any) -> str:
    row = conn.execute(
        "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
    ).fetchone()
    return str(row[0])


def classify(
    conn: Any,
    *,
    app: str,
    owner: str | None = None,
    schema: str | None = None,
    history_tables: Sequence[str] = HISTORY_TABLES,
) -> list[Relation]:
    """Every relation (of `schema`, or of all schemas) with its kind, for the role `app`.

    Kinds: `application`, `history` (read-only for the application), and `other`
    (extension members, other roles' objects: nothing for the application). The owner
    role is the database's owner unless given.
    """
    owner = owner or database_owner(conn)
    rows = conn.execute(
        _RELATIONS, {"app": app, "schema": schema, "table": TABLE_WRITES, "seq": SEQUENCE_WRITES}
    ).fetchall()
    relations = []
    for row in rows:
        rel = Relation(*row)
        if rel.extension:
            kind, reason = "other", f"member of extension {rel.extension}"
        elif rel.name in history_tables or (rel.is_sequence and rel.owned_by in history_tables):
            kind, reason = "history", "migration history"
        elif rel.owner != owner:
            kind, reason = "other", f"owned by {rel.owner}, not by the owner role {owner}"
        else:
            kind, reason = "application", "application table"
        relations.append(Relation(*row, kind=kind, reason=reason))
    return relations


def protect_history_table(conn: Any, table: str) -> list[str]:
    """Take every write on `table` and on its sequence from everyone but its owner.

    Default privileges (D4) give the application role CRUD on every table the owner
    creates, the history tables included; the owner's record must stay the owner's.
    Reading stays. Acts only where the connected role may (it owns the table, or is a
    superuser); returns the roles whose writes were taken back.
    """
    rows = conn.execute(
        "SELECT DISTINCT c.oid::regclass::text, c.relkind = 'S', a.grantee::regrole::text"
        "  FROM pg_class c, aclexplode(c.relacl) a"
        " WHERE (c.oid = to_regclass(%(t)s) OR c.oid IN (SELECT d.objid FROM pg_depend d"
        "        WHERE d.refobjid = to_regclass(%(t)s) AND d.classid = 'pg_class'::regclass"
        "          AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')))"
        "   AND a.grantee NOT IN (0, c.relowner) AND a.privilege_type <> 'SELECT'"
        "   AND pg_has_role(c.relowner, 'USAGE')",
        {"t": table},
    ).fetchall()
    for rel, is_sequence, grantee in rows:
        conn.execute(
            sql.SQL("REVOKE {} ON {} {} FROM {}").format(
                sql.SQL(SEQUENCE_WRITES if is_sequence else TABLE_WRITES),
                sql.SQL("SEQUENCE" if is_sequence else "TABLE"),
                sql.SQL(rel),  # regclass text: quoted and qualified as needed by the server
                sql.Identifier(grantee),
            )
        )
    return sorted({grantee for _rel, _seq, grantee in rows})
