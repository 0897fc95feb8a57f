"""Indexes a failed CREATE INDEX CONCURRENTLY left behind, and the files that made them.

A build that fails (a duplicate in a unique index, a cancel, a deadlock) leaves the
index in the catalog with `indisvalid = false`: queries never use it, every write still
maintains it, and `CREATE INDEX CONCURRENTLY IF NOT EXISTS` skips it, so a rerun of the
fixed file reports success while the index stays invalid.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlmigrations.lib.exceptions import SqlMigrationError
from sqlmigrations.lib.files import MigrationFile
from sqlmigrations.lib.objects import SchemaObject, created_objects

_MAY_CREATE_AN_INDEX = re.compile(r"\bINDEX\b", re.IGNORECASE)


class InvalidIndexLeft(SqlMigrationError):
    """A file would create an index whose name an invalid index still holds."""


@dataclass(frozen=True)
class InvalidIndex:
    """One index that queries cannot use: invalid, or not even ready for writes."""

    schema: str
    name: str
    table: str
    definition: str
    valid: bool
    ready: bool

    @property
    def qualified(self) -> str:
        return f"{_ident(self.schema)}.{_ident(self.name)}"

    @property
    def drop(self) -> str:
        return f"DROP INDEX CONCURRENTLY IF EXISTS {self.qualified};"

    @property
    def flags(self) -> str:
        return "indisvalid = false" + ("" if self.ready else ", indisready = false")

    def __str__(self) -> str:
        return f"{self.schema}.{self.name} on {self.table} ({self.flags})"

    def as_json(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "name": self.name,
            "table": self.table,
            "valid": self.valid,
            "ready": self.ready,
            "definition": self.definition,
            "drop": self.drop,
        }


def _ident(name: str) -> str:
    """Quote an identifier as quote_ident does: only when it needs it."""
    plain = name.isidentifier() and name == name.lower() and name.isascii()
    return name if plain else '"' + name.replace('"', '""') + '"'


QUERY = (
    "SELECT n.nspname, c.relname, t.relname, pg_get_indexdef(i.indexrelid),"
    " i.indisvalid, i.indisready"
    " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
    " JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE NOT (i.indisvalid AND i.indisready)"
    " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
    " AND n.nspname NOT LIKE 'pg_toast%%'"
    # An index being built right now is invalid until its build ends.
    " AND NOT EXISTS (SELECT 1 FROM pg_stat_progress_create_index p"
    " WHERE p.index_relid = i.indexrelid)"
    " ORDER BY 1, 2"
)


def invalid_indexes(cursor: Any) -> list[InvalidIndex]:
    """Return every invalid index of the database, but those being built right now."""
    cursor.execute(QUERY)
    return [InvalidIndex(*row) for row in cursor.fetchall()]


def left_by(objects: Iterable[SchemaObject], invalid: Iterable[InvalidIndex]) -> list[InvalidIndex]:
    """Return the invalid indexes that these created objects name (an unnamed CREATE
    INDEX matches the invalid indexes of its table)."""
    indexes = [o for o in objects if o.kind == "index"]
    found = []
    for index in invalid:
        for o in indexes:
            same_schema = o.schema in (None, index.schema)
            named = o.name == index.name
            table = (o.table or "").rsplit(".", 1)[-1]
            if same_schema and (named or (o.name is None and table == index.table)):
                found.append(index)
                break
    return found


def creators(
    files: Iterable[tuple[MigrationFile, str]], invalid: list[InvalidIndex]
) -> dict[InvalidIndex, str]:
    """Map each invalid index to the V file that creates it, where one does."""
    found: dict[InvalidIndex, str] = {}
    if not invalid:
        return found
    for mf, sql in files:
        if _MAY_CREATE_AN_INDEX.search(sql):
            for index in left_by(created_objects(mf, sql), invalid):
                found[index] = mf.script
    return found


def require_no_invalid_index(cursor: Any, mf: MigrationFile, sql: str) -> None:
    """Refuse to run a file that creates an index an invalid one of that name stands for."""
    if not _MAY_CREATE_AN_INDEX.search(sql):
        return
    objects = [o for o in created_objects(mf, sql) if o.kind == "index" and o.name]
    if not objects:
        return
    stale = left_by(objects, invalid_indexes(cursor))
    if not stale:
        return
    names = ", ".join(str(i) for i in stale)
    drops = " ".join(i.drop for i in stale)
    raise InvalidIndexLeft(
        f"creates an index that is already in the database and INVALID: {names}, left "
        "by an earlier failed build; `IF NOT EXISTS` would skip it and report success, "
        f"and without it the file fails; nothing of this file ran: drop it first ({drops}), "
        "then run migrate again",
        path=mf.script,
    )
