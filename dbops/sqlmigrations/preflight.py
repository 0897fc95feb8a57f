"""Find what pending files need from the database before any of them runs: the roles.

A file that grants to a role that does not exist fails halfway through a run (V8 after
V1-V7 committed). The roles the files name (GRANT/REVOKE ... TO/FROM, OWNER TO, policies,
default privileges, role membership) are read with PostgreSQL's own parser and looked up
in pg_roles first, so such a run stops before it starts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pglast import ast, parse_sql
from pglast.enums import RoleSpecType
from pglast.parser import ParseError
from pglast.visitors import Visitor

from dbops.sqlmigrations.exceptions import SqlMigrationError, line_at
from dbops.sqlmigrations.files import MigrationFile
from dbops.sqlmigrations.statements import first_token

# Only files that may name a role are parsed.
_MAY_NAME_A_ROLE = re.compile(r"\b(GRANT|REVOKE|OWNER|POLICY|ROLE|AUTHORIZATION)\b", re.I)


class MissingRole(SqlMigrationError):
    """A pending file names a role the database does not have."""


@dataclass(frozen=True)
class RoleReference:
    """One role a file names, where, and the placeholder that supplied it (if any)."""

    role: str
    script: str
    line: int
    placeholder: str | None = None


class _Roles(Visitor):  # type: ignore[misc]
    """Collect (offset, role) for every role a statement names or creates."""

    def __init__(self) -> None:
        super().__init__()
        self.at = 0  # the statement's offset: for names the parser gives no location
        self.named: list[tuple[int, str]] = []
        self.created: list[tuple[int, str]] = []

    def visit_RoleSpec(self, ancestors: Any, node: ast.RoleSpec) -> None:
        if node.roletype == RoleSpecType.ROLESPEC_CSTRING and node.rolename:
            location = node.location if node.location is not None and node.location >= 0 else 0
            self.named.append((max(location, self.at), node.rolename))

    def visit_GrantRoleStmt(self, ancestors: Any, node: ast.GrantRoleStmt) -> None:
        for granted in node.granted_roles or ():
            if granted.priv_name:
                self.named.append((self.at, granted.priv_name))

    def visit_CreateRoleStmt(self, ancestors: Any, node: ast.CreateRoleStmt) -> None:
        self.created.append((self.at, node.role))


def role_references(
    mf: MigrationFile, sql: str, placeholders: Mapping[str, str | None]
) -> list[RoleReference | str]:
    """Return, in file order, the roles the rendered file names and (as str) creates."""
    if not _MAY_NAME_A_ROLE.search(sql):
        return []
    try:
        statements = parse_sql(sql)
    except ParseError:
        return []  # running the file reports the syntax error with its line
    visitor = _Roles()
    for raw_statement in statements:
        visitor.at = first_token(sql, raw_statement.stmt_location or 0)
        visitor(raw_statement.stmt)
    raw = mf.read_text()
    used = {
        name: value
        for name, value in placeholders.items()
        if value and f"${{{name}}}".lower() in raw.lower()
    }
    events: list[tuple[int, RoleReference | str]] = [
        (
            offset,
            RoleReference(
                role,
                mf.script,
                line_at(sql, offset),
                next((f"${{{name}}}" for name, value in used.items() if value == role), None),
            ),
        )
        for offset, role in visitor.named
    ]
    # A role created by a statement counts from there on (sorted: a creation first).
    events += [(offset, role) for offset, role in visitor.created]
    events.sort(key=lambda event: (event[0], isinstance(event[1], RoleReference)))
    return [event for _, event in events]


def missing_roles(
    cursor: Any, files: Iterable[tuple[MigrationFile, str]], placeholders: Mapping[str, Any]
) -> list[RoleReference]:
    """Return the first reference to each role that neither exists nor is created earlier.

    `files` are the pending files in the order they run, each with its rendered SQL.
    """
    references: list[RoleReference] = []
    created: set[str] = set()
    for mf, sql in files:
        for event in role_references(mf, sql, placeholders):
            if isinstance(event, str):
                created.add(event)
            elif event.role not in created:
                references.append(event)
    names = sorted({r.role for r in references})
    if not names:
        return []
    cursor.execute("SELECT rolname FROM pg_catalog.pg_roles WHERE rolname = ANY(%s)", [names])
    existing = {row[0] for row in cursor.fetchall()}
    first: dict[str, RoleReference] = {}
    for ref in references:
        if ref.role not in existing:
            first.setdefault(ref.role, ref)
    return list(first.values())
