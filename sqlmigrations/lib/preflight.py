"""Find what pending files need from the database before any of them runs: the roles.

A file that grants to a role that does not exist fails halfway through a run (V8 after
V1-V7 committed). The roles the files name (GRANT/REVOKE ... TO/FROM, OWNER TO, policies,
default privileges, role membership) are read with PostgreSQL's own parser and looked up
in pg_roles first, so such a run stops before it starts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlmigrations.lib.exceptions import SqlMigrationError, line_at
from sqlmigrations.lib.files import MigrationFile
from sqlmigrations.lib.statements import first_token

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


def _walk(node: Any, at: int, named: list[tuple[int, str]], created: list[tuple[int, str]]) -> None:
    """Collect the roles a statement's parse tree (libpg_query's JSON) names and creates.

    `at` is the statement's offset, for names the parser gives no location of their own.
    """
    if isinstance(node, list):
        for item in node:
            _walk(item, at, named, created)
        return
    if not isinstance(node, dict):
        return
    for kind, value in node.items():
        if kind == "RoleSpec" and value.get("roletype") == "ROLESPEC_CSTRING":
            named.append((max(value.get("location", at), at), value["rolename"]))
        elif kind == "GrantRoleStmt":
            for granted in value.get("granted_roles", ()):
                if name := granted.get("AccessPriv", {}).get("priv_name"):
                    named.append((at, name))
        elif kind == "CreateRoleStmt":
            created.append((at, value["role"]))
        _walk(value, at, named, created)


def role_references(
    mf: MigrationFile, sql: str, placeholders: Mapping[str, str | None]
) -> list[RoleReference | str]:
    """Return, in file order, the roles the rendered file names and (as str) creates."""
    if not _MAY_NAME_A_ROLE.search(sql):
        return []
    # Imported here: loading the parser took 80-100 ms of every command's start-up (the
    # system checks import the engine), and most runs have no file that needs it.
    from pglast.parser import ParseError, parse_sql_json

    try:
        # The JSON parse tree: building pglast's Python nodes costs 20 times more.
        tree = json.loads(parse_sql_json(sql))
    except ParseError:
        return []  # running the file reports the syntax error with its line
    encoded = sql.encode("utf-8")
    named: list[tuple[int, str]] = []
    created: list[tuple[int, str]] = []
    for raw_statement in tree.get("stmts", ()):
        at = first_token(sql, _chars(encoded, raw_statement.get("stmt_location", 0)))
        _walk(raw_statement["stmt"], _bytes(sql, at), named, created)
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
                line_at(encoded, offset),
                next((f"${{{name}}}" for name, value in used.items() if value == role), None),
            ),
        )
        for offset, role in named
    ]
    # A role created by a statement counts from there on (sorted: a creation first).
    events += [(offset, role) for offset, role in created]
    events.sort(key=lambda event: (event[0], isinstance(event[1], RoleReference)))
    return [event for _, event in events]


def _chars(encoded: bytes, offset: int) -> int:
    """Turn libpg_query's byte offset into a character offset."""
    return len(encoded[:offset].decode("utf-8", errors="ignore"))


def _bytes(text: str, offset: int) -> int:
    return len(text[:offset].encode("utf-8"))


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
