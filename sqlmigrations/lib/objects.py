"""What migration files create, read with PostgreSQL's parser, and whether a database has it.

`baseline` uses it to refuse a version whose objects are absent, `repair` to name the
index a failed non-transactional file left behind and to check that a file marked
deleted still has its objects before it is un-marked.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlmigrations.lib.exceptions import line_at
from sqlmigrations.lib.files import MigrationFile
from sqlmigrations.lib.statements import first_token

RELATIONS = frozenset({"table", "index", "view", "materialized view", "sequence"})
_DROP_KINDS = {
    "OBJECT_TABLE": "table",
    "OBJECT_INDEX": "index",
    "OBJECT_VIEW": "view",
    "OBJECT_MATVIEW": "materialized view",
    "OBJECT_SEQUENCE": "sequence",
    "OBJECT_TYPE": "type",
    "OBJECT_DOMAIN": "type",
    "OBJECT_FUNCTION": "function",
    "OBJECT_PROCEDURE": "function",
    "OBJECT_SCHEMA": "schema",
    "OBJECT_EXTENSION": "extension",
}


@dataclass(frozen=True)
class SchemaObject:
    """One object a file creates: its kind, (schema-qualified) name and where."""

    kind: str  # table, index, view, materialized view, sequence, type, function, schema, ...
    schema: str | None  # None: the first schema of the search path
    name: str | None  # None: an index PostgreSQL names itself
    script: str
    line: int
    table: str | None = None  # an index's table, as written

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else str(self.name)

    def __str__(self) -> str:
        name = self.qualified if self.name else f"(unnamed) on {self.table}"
        return f"{self.kind} {name} ({self.script}:{self.line})"


def created_objects(mf: MigrationFile, sql: str) -> list[SchemaObject]:
    """Return the objects the rendered file creates, in file order, net of its own drops."""
    return net_objects([(mf, sql)])


def net_objects(files: Iterable[tuple[MigrationFile, str]]) -> list[SchemaObject]:
    """Return what the files, run in order, leave created: creates less later drops and
    renames. A file PostgreSQL's parser rejects adds nothing (running it reports that)."""
    objects: dict[tuple[str, str | None, str], SchemaObject] = {}
    unnamed: list[SchemaObject] = []
    for mf, sql in files:
        for node, line in _statements(sql):
            _apply(node, mf.script, line, objects, unnamed)
    return [*objects.values(), *unnamed]


def _statements(sql: str) -> list[tuple[dict[str, Any], int]]:
    # Imported here, as in preflight: every command imports this module through the
    # system checks, and only a file run outside a transaction needs the parser.
    from pglast.parser import ParseError, parse_sql_json

    try:
        tree = json.loads(parse_sql_json(sql))
    except ParseError:
        return []
    encoded = sql.encode("utf-8")
    result = []
    for raw in tree.get("stmts", ()):
        chars = len(encoded[: raw.get("stmt_location", 0)].decode("utf-8", errors="ignore"))
        result.append((raw["stmt"], line_at(sql, first_token(sql, chars))))
    return result


def _key(kind: str, schema: str | None, name: str) -> tuple[str, str | None, str]:
    # Every relation shares one namespace: DROP TABLE finds what CREATE VIEW made too.
    return ("relation" if kind in RELATIONS else kind, schema, name)


def _apply(
    node: dict[str, Any],
    script: str,
    line: int,
    objects: dict[tuple[str, str | None, str], SchemaObject],
    unnamed: list[SchemaObject],
) -> None:
    (kind, stmt), *_ = node.items()
    created = _created(kind, stmt, script, line)
    if created is not None:
        if created.name is None:
            unnamed.append(created)
        else:
            objects[_key(created.kind, created.schema, created.name)] = created
        return
    if kind == "DropStmt" and stmt.get("removeType") in _DROP_KINDS:
        dropped = _DROP_KINDS[stmt["removeType"]]
        for item in stmt.get("objects", ()):
            parts = _names(item)
            if parts:
                schema, name = (parts[-2] if len(parts) > 1 else None), parts[-1]
                gone = objects.pop(_key(dropped, schema, name), None)
                if gone is not None and gone.kind == "table":
                    _drop_indexes_of(gone, objects, unnamed)
    elif kind == "RenameStmt" and stmt.get("relation") and stmt.get("newname"):
        rel = stmt["relation"]
        for key in [k for k in objects if k[0] == "relation" and k[2] == rel["relname"]]:
            old = objects.pop(key)
            objects[(key[0], key[1], stmt["newname"])] = SchemaObject(
                old.kind, old.schema, stmt["newname"], old.script, old.line, old.table
            )


def _drop_indexes_of(
    table: SchemaObject,
    objects: dict[tuple[str, str | None, str], SchemaObject],
    unnamed: list[SchemaObject],
) -> None:
    """Forget the indexes of a dropped table: DROP TABLE takes them along."""
    for key, obj in list(objects.items()):
        if obj.kind == "index" and obj.table in (table.name, table.qualified):
            del objects[key]
    unnamed[:] = [o for o in unnamed if o.table not in (table.name, table.qualified)]


def _created(kind: str, stmt: dict[str, Any], script: str, line: int) -> SchemaObject | None:
    """Return the object a CREATE statement makes, or None for any other statement."""
    if kind == "CreateStmt":
        return _relation("table", stmt["relation"], script, line)
    if kind == "IndexStmt":
        rel = stmt["relation"]
        table = f"{rel['schemaname']}.{rel['relname']}" if rel.get("schemaname") else rel["relname"]
        # An index lives in its table's schema.
        return SchemaObject(
            "index", rel.get("schemaname"), stmt.get("idxname"), script, line, table
        )
    if kind == "ViewStmt":
        return _relation("view", stmt["view"], script, line)
    if kind == "CreateTableAsStmt":
        what = "materialized view" if stmt.get("objtype") == "OBJECT_MATVIEW" else "table"
        return _relation(what, stmt["into"]["rel"], script, line)
    if kind == "CreateSeqStmt":
        return _relation("sequence", stmt["sequence"], script, line)
    if kind == "CompositeTypeStmt":
        return _relation("type", stmt["typevar"], script, line)
    names = {
        "CreateEnumStmt": ("type", "typeName"),
        "CreateDomainStmt": ("type", "domainname"),
        "CreateFunctionStmt": ("function", "funcname"),
    }.get(kind)
    if names is not None:
        parts = _names({"List": {"items": stmt.get(names[1], [])}})
        schema = parts[-2] if len(parts) > 1 else None
        return SchemaObject(names[0], schema, parts[-1], script, line)
    if kind == "CreateSchemaStmt" and stmt.get("schemaname"):
        return SchemaObject("schema", None, stmt["schemaname"], script, line)
    if kind == "CreateExtensionStmt":
        return SchemaObject("extension", None, stmt["extname"], script, line)
    return None


def _relation(kind: str, rel: dict[str, Any], script: str, line: int) -> SchemaObject:
    return SchemaObject(kind, rel.get("schemaname"), rel["relname"], script, line)


def _names(item: dict[str, Any]) -> list[str]:
    """Return the dotted name parts of a List of String, a TypeName or an ObjectWithArgs."""
    if "List" in item:
        items = item["List"].get("items", [])
    elif "TypeName" in item:
        items = item["TypeName"].get("names", [])
    elif "ObjectWithArgs" in item:
        items = item["ObjectWithArgs"].get("objname", [])
    elif "String" in item:
        items = [item]
    else:
        return []
    return [i["String"]["sval"] for i in items if "String" in i]


def absent_objects(cursor: Any, objects: Iterable[SchemaObject]) -> list[SchemaObject]:
    """Return the objects the connected database does not have (names as the search path
    resolves them, as the files' statements did)."""
    missing = []
    for obj in objects:
        if obj.name is None:
            continue  # PostgreSQL chose its name: nothing to look up
        cursor.execute(_LOOKUP[obj.kind], {"schema": obj.schema, "name": obj.name})
        if cursor.fetchone()[0] is None:
            missing.append(obj)
    return missing


_QUALIFIED = "coalesce(quote_ident(%(schema)s::text) || '.', '') || quote_ident(%(name)s::text)"
_LOOKUP = {
    **dict.fromkeys(RELATIONS, f"SELECT to_regclass({_QUALIFIED})"),
    "type": f"SELECT to_regtype({_QUALIFIED})",
    "function": "SELECT min(p.oid) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
    " WHERE p.proname = %(name)s AND (n.nspname = %(schema)s::text"
    " OR (%(schema)s::text IS NULL AND n.nspname = ANY(current_schemas(false))))",
    "schema": "SELECT min(oid) FROM pg_namespace WHERE nspname = %(name)s",
    "extension": "SELECT min(oid) FROM pg_extension WHERE extname = %(name)s",
}
