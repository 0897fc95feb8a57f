"""Find the operations in pending files that would lock or rewrite a large table.

`sqlmigrations lint` reads a file; this module also reads the database it is about to
run on. A rewrite of a 10-row table is fine; the same statement on a table of millions of
rows holds an ACCESS EXCLUSIVE lock for minutes and the site stops answering. So each
statement is classified per target table, the table's size comes from the live catalog
(pg_class.reltuples, pg_total_relation_size), and only operations on tables above the
thresholds are reported. Two rules do not depend on size, because they break the code
that runs during the deploy: dropping a column the models still read, and renames.

A file that means it says so with an acknowledgement comment, per rule, with a reason:

    -- choregarden:allow table-rewrite reason="backfilled off-hours, 2 min window agreed"

This module imports neither Django nor the rest of the engine: the caller passes a
DB-API cursor, the columns the models read, and the thresholds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pglast import ast, parse_sql
from pglast.enums import AlterTableType, ConstrType, ObjectType
from pglast.parser import ParseError

from sqlmigrations.lib.acknowledgements import Acknowledgement, parse_acknowledgements
from sqlmigrations.lib.exceptions import SqlMigrationError, line_at
from sqlmigrations.lib.files import MigrationFile
from sqlmigrations.lib.livecatalog import Catalog, Limits, TableSize, is_large, unquote
from sqlmigrations.lib.statements import first_token

RECIPE_DOC = 'docs/migrations.md, "Large tables"'
RENAME_DOC = 'docs/migrations.md, "Rename a column"'

# rule -> (what PostgreSQL does, the safe recipe)
RULES: dict[str, tuple[str, str]] = {
    "table-rewrite": (
        "rewrites every row under an ACCESS EXCLUSIVE lock: no reads or writes until it ends",
        "add a new column, backfill it in batches, switch the code, drop the old one "
        f"({RECIPE_DOC})",
    ),
    "set-not-null": (
        "scans every row under an ACCESS EXCLUSIVE lock to check for NULLs",
        "first `ADD CONSTRAINT c CHECK (col IS NOT NULL) NOT VALID`, then `VALIDATE "
        "CONSTRAINT c` (it only takes SHARE UPDATE EXCLUSIVE), then SET NOT NULL: PostgreSQL "
        f"skips the scan when a valid CHECK says the same ({RECIPE_DOC})",
    ),
    "constraint-not-valid": (
        "checks every row while it holds a lock that blocks writes (SHARE ROW EXCLUSIVE for a "
        "foreign key, ACCESS EXCLUSIVE for a CHECK)",
        "add the constraint with NOT VALID, then `VALIDATE CONSTRAINT` in a later statement "
        f"(SHARE UPDATE EXCLUSIVE: writes go on) ({RECIPE_DOC})",
    ),
    "index-not-concurrent": (
        "builds the index under a SHARE lock: every write to the table waits until it ends",
        "use CREATE INDEX CONCURRENTLY, alone in its own file with `executeInTransaction=false` "
        f"in its .sql.conf ({RECIPE_DOC})",
    ),
    "constraint-without-index": (
        "builds a unique index under an ACCESS EXCLUSIVE lock",
        "CREATE UNIQUE INDEX CONCURRENTLY in its own file first, then `ADD CONSTRAINT c UNIQUE "
        f"USING INDEX i` (or PRIMARY KEY USING INDEX) ({RECIPE_DOC})",
    ),
    "drop-column-in-use": (
        "drops a column the models of this release still read: every query of that model fails "
        "once it is gone",
        "expand/contract: ship the release that stops reading the column (remove the field) "
        "first, mark the column `COMMENT ON COLUMN ... IS 'DEPRECATED ...'`, and drop it in a "
        f"later release ({RENAME_DOC})",
    ),
    "rename": (
        "renames under an ACCESS EXCLUSIVE lock; the code still running during the deploy "
        "reads the old name and fails",
        "expand/contract over two releases: add the new column, write both, backfill, switch "
        f"reads, then drop the old one later ({RENAME_DOC})",
    ),
}
# The rules that fire only on a table above the thresholds.
SIZED = frozenset(RULES) - {"drop-column-in-use", "rename"}

# Only files that may hold a dangerous statement are parsed (a table's CREATE is not one).
_MAY_BE_DANGEROUS = re.compile(r"\b(ALTER|INDEX|VACUUM|CLUSTER)\b", re.IGNORECASE)

# Old type -> new type changes PostgreSQL makes without a rewrite (same type, wider typmod).
_VARCHAR, _BPCHAR, _VARBIT, _NUMERIC = 1043, 1042, 1562, 1700
_PRECISION_TYPES = {1114, 1184, 1083, 1266}  # timestamp, timestamptz, time, timetz
_SERIALS = {"serial", "serial2", "serial4", "serial8", "smallserial", "bigserial"}


class DangerousMigration(SqlMigrationError):
    """Pending files would lock or rewrite a large table, or break the running code."""


@dataclass(frozen=True)
class Operation:
    """One dangerous statement of a file, on one table."""

    script: str
    line: int
    rule: str
    table: str
    what: str  # what the statement does, in a few words
    size: TableSize | None = None
    reader: str | None = None  # drop-column-in-use: "chores.Task.title"

    def problem(self) -> str:
        """Say what the statement does to which table, of what size."""
        size = f" ({self.size.describe()})" if self.size else ""
        table = _label(self.table)
        who = f"; {self.reader} reads {table}.{self.what.split()[-1]}" if self.reader else ""
        return f"{self.what} on table {table}{size} {RULES[self.rule][0]}{who}"

    def message(self) -> str:
        return f"{self.problem()}. Safe: {RULES[self.rule][1]}"

    def __str__(self) -> str:
        return f"{self.script}:{self.line}: {self.rule}: {self.message()}"


@dataclass
class _FileState:
    """What earlier statements did, for the statements after them: of the same file, or of
    the earlier files of the same run (a CHECK validated by V3 lets V4's SET NOT NULL
    through when both are pending: V3 has committed by the time V4 runs)."""

    created: set[str] = field(default_factory=set)
    checks: dict[tuple[str, str], str] = field(default_factory=dict)  # (table, name) -> column
    validated: set[tuple[str, str]] = field(default_factory=set)  # (table, column)


def run_state() -> _FileState:
    """A state to pass to classify() for each file of one run, in order."""
    return _FileState()


def _table(relation: ast.RangeVar) -> str:
    """The relation as to_regclass reads it (quoted, with its schema when it has one)."""
    name = _quote(relation.relname)
    return f"{_quote(relation.schemaname)}.{name}" if relation.schemaname else name


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _label(table: str) -> str:
    return ".".join(unquote(part) for part in re.findall(r'"(?:[^"]|"")*"', table))


def _walk(node: Any) -> Iterator[Any]:
    if isinstance(node, (list, tuple)):
        for item in node:
            yield from _walk(item)
    elif isinstance(node, ast.Node):
        yield node
        for attr in type(node).__slots__:
            yield from _walk(getattr(node, attr, None))


def _type_name(type_name: ast.TypeName) -> str:
    name = ".".join(_quote(n.sval) for n in type_name.names)
    return name + "[]" * len(type_name.arrayBounds or ())


def _typmods(type_name: ast.TypeName) -> list[int] | None:
    mods = []
    for mod in type_name.typmods or ():
        value = getattr(mod, "val", None)
        if not isinstance(value, ast.Integer):
            return None
        mods.append(value.ival)
    return mods


def needs_rewrite(old_oid: int, old_mod: int, new_oid: int, new_mods: list[int]) -> bool:
    """Whether ALTER COLUMN TYPE from (old type, typmod) to (new type, typmods) rewrites.

    Same type: a wider or removed length (varchar, varbit), a wider precision at the same
    scale (numeric), a wider precision (timestamp, time) are catalog-only, as is no change.
    Anything else is taken as a rewrite (the caller handles binary-coercible casts).
    """
    if old_oid != new_oid:
        return True
    if not new_mods:
        return old_oid not in (_VARCHAR, _VARBIT, _NUMERIC, *_PRECISION_TYPES) and old_mod != -1
    if old_mod == -1:
        return True  # unlimited to limited: every value is checked
    if old_oid == _VARCHAR:
        return new_mods[0] < old_mod - 4
    if old_oid == _VARBIT:
        return new_mods[0] < old_mod
    if old_oid == _NUMERIC:
        precision, scale = ((old_mod - 4) >> 16) & 0xFFFF, (old_mod - 4) & 0xFFFF
        new_scale = new_mods[1] if len(new_mods) > 1 else 0
        return new_scale != scale or new_mods[0] < precision
    if old_oid in _PRECISION_TYPES:
        return new_mods[0] < old_mod
    if old_oid == _BPCHAR:
        return new_mods[0] != old_mod - 4  # char(n) pads to n: any other length rewrites
    return True


def classify(
    mf: MigrationFile,
    text: str,
    catalog: Catalog | None,
    model_columns: Mapping[tuple[str, str], str],
    state: _FileState | None = None,
) -> list[Operation]:
    """Return the file's dangerous operations, before any size is known.

    `model_columns`: (table, column) -> "app.Model.field" of the models that read it.
    Without a catalog (no database) the checks that need one (type changes, volatile
    defaults, existing CHECKs) are left out. Tables the file creates are skipped. `state`
    carries what the earlier files of the same run did (one per run, files in order).
    """
    if mf.kind == "U" or not _MAY_BE_DANGEROUS.search(text):
        return []
    try:
        statements = [(first_token(text, s.stmt_location or 0), s.stmt) for s in parse_sql(text)]
    except ParseError:
        return []  # running or linting the file reports the syntax error
    state = _FileState() if state is None else state
    found: list[Operation] = []
    for offset, stmt in statements:
        line = line_at(text, offset)
        for rule, table, what, reader in _statement(stmt, state, catalog, model_columns):
            found.append(Operation(mf.script, line, rule, table, what, reader=reader))
    return found


_Found = tuple[str, str, str, str | None]  # rule, table, what, reader


def _statement(
    stmt: Any,
    state: _FileState,
    catalog: Catalog | None,
    model_columns: Mapping[tuple[str, str], str],
) -> Iterator[_Found]:
    if isinstance(stmt, ast.CreateStmt):
        state.created.add(_table(stmt.relation))
    elif isinstance(stmt, ast.CreateTableAsStmt):
        state.created.add(_table(stmt.into.rel))
    elif isinstance(stmt, ast.IndexStmt) and not stmt.concurrent:
        table = _table(stmt.relation)
        if table not in state.created:
            yield "index-not-concurrent", table, "CREATE INDEX without CONCURRENTLY", None
    elif isinstance(stmt, ast.RenameStmt) and stmt.relation is not None:
        table = _table(stmt.relation)
        if table in state.created:
            return
        if stmt.renameType == ObjectType.OBJECT_COLUMN:
            yield "rename", table, f"RENAME COLUMN {stmt.subname} TO {stmt.newname}", None
        elif stmt.renameType == ObjectType.OBJECT_TABLE:
            yield "rename", table, f"RENAME TO {stmt.newname}", None
    elif isinstance(stmt, ast.VacuumStmt) and stmt.is_vacuumcmd:
        if any(o.defname == "full" for o in stmt.options or ()):
            for rel in stmt.rels or ():
                yield "table-rewrite", _table(rel.relation), "VACUUM FULL", None
    elif isinstance(stmt, ast.ClusterStmt) and stmt.relation is not None:
        yield "table-rewrite", _table(stmt.relation), "CLUSTER", None
    elif isinstance(stmt, ast.AlterTableStmt) and stmt.relation is not None:
        table = _table(stmt.relation)
        if table in state.created or stmt.objtype != ObjectType.OBJECT_TABLE:
            return
        for cmd in stmt.cmds or ():
            yield from _alter(table, cmd, state, catalog, model_columns)


def _alter(
    table: str,
    cmd: ast.AlterTableCmd,
    state: _FileState,
    catalog: Catalog | None,
    model_columns: Mapping[tuple[str, str], str],
) -> Iterator[_Found]:
    kind = cmd.subtype
    name = _label(table)
    if kind == AlterTableType.AT_DropColumn:
        reader = model_columns.get((name.split(".")[-1], cmd.name))
        if reader:
            yield "drop-column-in-use", table, f"DROP COLUMN {cmd.name}", reader
    elif kind == AlterTableType.AT_AlterColumnType and catalog is not None:
        if _type_change_rewrites(table, cmd, catalog):
            yield "table-rewrite", table, f"ALTER COLUMN {cmd.name} TYPE", None
    elif kind == AlterTableType.AT_AddColumn:
        what = _add_column_rewrites(cmd.def_, catalog)
        if what:
            yield "table-rewrite", table, what, None
    elif kind in (AlterTableType.AT_SetLogged, AlterTableType.AT_SetUnLogged):
        yield "table-rewrite", table, "SET LOGGED/UNLOGGED", None
    elif kind == AlterTableType.AT_SetNotNull:
        if (table, cmd.name) in state.validated:
            return
        if catalog is None:
            return
        column = catalog.column(table, cmd.name)
        if column is not None and column[2]:
            return  # NOT NULL already: nothing to check
        if catalog.valid_not_null_check(table, cmd.name):
            return
        yield "set-not-null", table, f"ALTER COLUMN {cmd.name} SET NOT NULL", None
    elif kind == AlterTableType.AT_ValidateConstraint:
        column = state.checks.get((table, cmd.name))
        if column:
            state.validated.add((table, column))
    elif kind == AlterTableType.AT_AddConstraint:
        yield from _constraint(table, cmd.def_, state)


def _constraint(table: str, con: ast.Constraint, state: _FileState) -> Iterator[_Found]:
    if con.contype in (ConstrType.CONSTR_FOREIGN, ConstrType.CONSTR_CHECK):
        if con.contype == ConstrType.CONSTR_CHECK:
            column = _not_null_column(con.raw_expr)
            if column and con.conname:
                state.checks[(table, con.conname)] = column
            if column and not con.skip_validation:
                state.validated.add((table, column))
        if not con.skip_validation:
            kind = "FOREIGN KEY" if con.contype == ConstrType.CONSTR_FOREIGN else "CHECK"
            yield "constraint-not-valid", table, f"ADD {kind} without NOT VALID", None
    elif con.contype in (ConstrType.CONSTR_UNIQUE, ConstrType.CONSTR_PRIMARY) and not con.indexname:
        kind = "UNIQUE" if con.contype == ConstrType.CONSTR_UNIQUE else "PRIMARY KEY"
        yield "constraint-without-index", table, f"ADD {kind} without USING INDEX", None


def _not_null_column(expr: Any) -> str | None:
    if (
        isinstance(expr, ast.NullTest)
        and expr.nulltesttype == 1  # IS_NOT_NULL
        and isinstance(expr.arg, ast.ColumnRef)
        and len(expr.arg.fields) == 1
        and isinstance(expr.arg.fields[0], ast.String)
    ):
        return str(expr.arg.fields[0].sval)
    return None


def _type_change_rewrites(table: str, cmd: ast.AlterTableCmd, catalog: Catalog) -> bool:
    definition: ast.ColumnDef = cmd.def_
    if definition.raw_default is not None:
        return True  # USING: every row is computed again
    old = catalog.column(table, cmd.name)
    new_oid = catalog.type_oid(_type_name(definition.typeName))
    mods = _typmods(definition.typeName)
    if old is None or new_oid is None or mods is None:
        return True  # a column or type this file makes: cannot tell, assume the worst
    old_oid, old_mod, _ = old
    if old_oid != new_oid:
        return not (catalog.binary_coercible(old_oid, new_oid) and not mods)
    return needs_rewrite(old_oid, old_mod, new_oid, mods)


def _add_column_rewrites(definition: ast.ColumnDef, catalog: Catalog | None) -> str | None:
    names = [n.sval for n in definition.typeName.names] if definition.typeName else []
    if names and names[-1] in _SERIALS:
        return f"ADD COLUMN {definition.colname} {names[-1]} (a volatile nextval() default)"
    for con in definition.constraints or ():
        if con.contype == ConstrType.CONSTR_IDENTITY:
            return f"ADD COLUMN {definition.colname} GENERATED AS IDENTITY"
        if con.contype == ConstrType.CONSTR_GENERATED:
            return f"ADD COLUMN {definition.colname} GENERATED ALWAYS AS (...) STORED"
        if con.contype == ConstrType.CONSTR_DEFAULT and catalog is not None:
            calls = [n for n in _walk(con.raw_expr) if isinstance(n, ast.FuncCall)]
            volatile = [c.funcname[-1].sval for c in calls if catalog.volatile(c.funcname[-1].sval)]
            if volatile:
                return (
                    f"ADD COLUMN {definition.colname} with a volatile default "
                    f"({', '.join(sorted(set(volatile)))}())"
                )
    return None


def acknowledgements(text: str, script: str) -> dict[str, Acknowledgement]:
    """Return the file's acknowledgements of these rules (BadAcknowledgement if malformed)."""
    return parse_acknowledgements(text, script, RULES, RECIPE_DOC)


def dangerous_operations(
    catalog: Catalog,
    files: Iterable[tuple[MigrationFile, str]],
    model_columns: Mapping[tuple[str, str], str],
    limits: Limits,
) -> tuple[list[Operation], list[tuple[Operation, Acknowledgement]]]:
    """Return the refused operations and the acknowledged ones of files about to run.

    Raises BadAcknowledgement for a malformed acknowledgement. Operations of the sized
    rules count only on a table at or above a threshold.
    """
    refused: list[Operation] = []
    allowed: list[tuple[Operation, Acknowledgement]] = []
    run = run_state()  # the files run in this order, each committed before the next
    for mf, text in files:
        acks = acknowledgements(text, mf.script)
        for op in classify(mf, text, catalog, model_columns, run):
            size = catalog.size(op.table, limits)
            sized = Operation(op.script, op.line, op.rule, op.table, op.what, size, op.reader)
            if op.rule in SIZED and not is_large(size, limits):
                continue
            ack = acks.get(op.rule)
            if ack is not None:
                allowed.append((sized, ack))
            else:
                refused.append(sized)
    return refused, allowed


def refusal(refused: list[Operation]) -> DangerousMigration:
    """Build the error that stops migrate before anything runs."""
    one = len(refused) == 1
    lines = "\n".join(f"  - {op}" for op in refused)
    return DangerousMigration(
        f"{len(refused)} operation{'' if one else 's'} in pending migrations would lock or "
        f"rewrite a large table or break the running code, so nothing was applied:\n{lines}\n"
        "Change the file as the recipe says, or, when it is safe here, acknowledge it in the "
        'file with `-- choregarden:allow RULE reason="why"` '
        f"({RECIPE_DOC}).",
        path=refused[0].script,
        line=refused[0].line,
    )
