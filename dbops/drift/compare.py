"""Schema drift: compare what the models declare with the migrated database's catalog.

The expected side is not re-implemented here: Django's schema editor creates the models'
tables in a scratch schema, inside a transaction that is always rolled back, and both sides
are then read with the same catalog queries, so PostgreSQL normalises types, defaults and
index or check definitions identically on both.

Rule: every table and column of the compared models is compared both ways (missing and extra
columns are drift); for everything else only what the models declare is compared (types,
nullability, identity, `db_default`, `db_comment`, primary keys, foreign keys, unique and check
constraints, indexes). Database-only extras the models cannot express (triggers, comments and
defaults the model does not declare, partial or expression indexes and constraints written in
SQL, partitions, ON DELETE actions, tables of no model) are not drift. Objects Django names
itself (foreign keys, `unique=True`, `db_index`) are matched by definition, not name; indexes and
constraints named in Meta must carry that name, because Django's Remove/Rename operations use it.
"""

from __future__ import annotations

import fnmatch
import re
import secrets
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from django.apps import apps
from django.db import DatabaseError, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model

IDENTITY = {"": "", "a": "identity (always)", "d": "identity (by default)"}
# Django's Now() renders statement_timestamp(); SQL written by hand says now() or
# CURRENT_TIMESTAMP. Within one statement they agree, so a default of any of them is one.
CURRENT_TIME = {"now()", "statement_timestamp()", "transaction_timestamp()", "CURRENT_TIMESTAMP"}


# A cast's type modifier does not change a default's value: Django writes
# '{}'::character varying(10)[] where SQL by hand gives '{}'::character varying[].
_CAST_TYPMOD = re.compile(r"(::[a-z][a-z ]*)\(\d+(?:,\s*\d+)?\)")


def same_default(model: str | None, database: str | None) -> bool:
    """Tell whether two catalog default expressions mean the same default."""
    if model in CURRENT_TIME and database in CURRENT_TIME:
        return True
    if model is None or database is None:
        return model == database
    return _CAST_TYPMOD.sub(r"\1", model) == _CAST_TYPMOD.sub(r"\1", database)


@dataclass(frozen=True)
class Difference:
    """One way the database differs from the models."""

    table: str
    object: str  # a column name, or a description such as "index items_price_idx"
    aspect: str  # "missing table", "missing column", "extra column", "type", ...
    model: str | None
    database: str | None

    @property
    def key(self) -> str:
        """Return "table.object: aspect", what SCHEMADRIFT_IGNORE patterns match."""
        where = f"{self.table}.{self.object}" if self.object else self.table
        return f"{where}: {self.aspect}"

    def __str__(self) -> str:
        return f"{self.key} (model: {self.model or '-'}; database: {self.database or '-'})"

    def as_dict(self) -> dict[str, str | None]:
        return asdict(self)


@dataclass(frozen=True)
class Column:
    type: str
    not_null: bool
    default: str | None
    identity: str
    generated: str
    collation: str | None
    comment: str | None


@dataclass(frozen=True)
class Index:
    name: str
    unique: bool
    primary: bool
    definition: str  # pg_get_indexdef after "USING": method, keys, INCLUDE, WHERE
    deferrable: str

    @property
    def signature(self) -> tuple[bool, str, str]:
        return (self.unique, self.definition, self.deferrable)

    def describe(self) -> str:
        words = ["UNIQUE" if self.unique else "", f"{self.name} USING {self.definition}"]
        return " ".join(w for w in [*words, self.deferrable] if w)


@dataclass
class Table:
    comment: str | None = None
    columns: dict[str, Column] = field(default_factory=dict)
    primary_key: tuple[str, ...] | None = None
    foreign_keys: set[tuple[tuple[str, ...], str, tuple[str, ...]]] = field(default_factory=set)
    indexes: list[Index] = field(default_factory=list)
    checks: dict[str, str] = field(default_factory=dict)  # name -> definition
    partition_key: tuple[str, ...] = ()  # columns of PARTITION BY, for a partitioned table


def read_catalog(cursor: Any, schema: str, tables: list[str]) -> dict[str, Table]:
    """Read the tables' columns, keys, indexes and checks from one schema."""
    result: dict[str, Table] = {}
    cursor.execute(
        """
        SELECT c.relname, obj_description(c.oid, 'pg_class')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND c.relname = ANY(%s)
        """,
        [schema, tables],
    )
    for name, comment in cursor.fetchall():
        result[name] = Table(comment=comment)
    cursor.execute(
        """
        SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated,
               CASE WHEN a.attcollation <> t.typcollation THEN co.collname END,
               col_description(c.oid, a.attnum)
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_type t ON t.oid = a.atttypid
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        LEFT JOIN pg_collation co ON co.oid = a.attcollation
        WHERE n.nspname = %s AND c.relname = ANY(%s) AND c.relkind IN ('r', 'p')
          AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY c.relname, a.attnum
        """,
        [schema, tables],
    )
    for (
        table,
        column,
        type_,
        not_null,
        default,
        identity,
        generated,
        coll,
        comment,
    ) in cursor.fetchall():
        result[table].columns[column] = Column(
            type_, not_null, default, identity, generated, coll, comment
        )
    cursor.execute(
        """
        SELECT c.relname, con.conname, con.contype, pg_get_constraintdef(con.oid, true),
               ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(num, i)
                     JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num
                     ORDER BY k.i),
               rc.relname,
               ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(num, i)
                     JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num
                     ORDER BY k.i)
        FROM pg_constraint con
        JOIN pg_class c ON c.oid = con.conrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_class rc ON rc.oid = con.confrelid
        WHERE n.nspname = %s AND c.relname = ANY(%s) AND con.contype IN ('p', 'f', 'c')
        """,
        [schema, tables],
    )
    for table, name, kind, definition, columns, ref_table, ref_columns in cursor.fetchall():
        info = result[table]
        if kind == "p":
            info.primary_key = tuple(columns)
        elif kind == "f":
            info.foreign_keys.add((tuple(columns), ref_table, tuple(ref_columns)))
        else:
            info.checks[name] = definition.removesuffix(" NOT VALID")
    cursor.execute(
        """
        SELECT c.relname, ic.relname, i.indisunique, i.indisprimary,
               pg_get_indexdef(i.indexrelid),
               COALESCE((SELECT CASE WHEN con.condeferred THEN 'DEFERRABLE INITIALLY DEFERRED'
                                     WHEN con.condeferrable THEN 'DEFERRABLE' ELSE '' END
                         FROM pg_constraint con
                         WHERE con.conindid = i.indexrelid AND con.conrelid = i.indrelid
                         LIMIT 1), '')
        FROM pg_index i
        JOIN pg_class ic ON ic.oid = i.indexrelid
        JOIN pg_class c ON c.oid = i.indrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %s AND c.relname = ANY(%s)
        ORDER BY ic.relname
        """,
        [schema, tables],
    )
    for table, name, unique, primary, indexdef, deferrable in cursor.fetchall():
        definition = indexdef.split(" USING ", 1)[1]
        result[table].indexes.append(Index(name, unique, primary, definition, deferrable))
    cursor.execute(
        """
        SELECT c.relname,
               ARRAY(SELECT a.attname FROM unnest(pt.partattrs::int2[]) WITH ORDINALITY k(num, i)
                     JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.num
                     ORDER BY k.i)
        FROM pg_partitioned_table pt
        JOIN pg_class c ON c.oid = pt.partrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %s AND c.relname = ANY(%s)
        """,
        [schema, tables],
    )
    for table, columns in cursor.fetchall():
        result[table].partition_key = tuple(columns)
    return result


def partitioned_key_matches(model_key: tuple[str, ...] | None, table: Table) -> bool:
    """PostgreSQL requires a partitioned table's primary key to contain the partition key:
    a database key that is the model's key plus the partition columns is not drift."""
    if not model_key or not table.partition_key or not table.primary_key:
        return False
    extra = tuple(c for c in table.partition_key if c not in model_key)
    return table.primary_key == (*model_key, *extra)


def compared_models(app_labels: Iterable[str]) -> list[type[Model]]:
    """Return the managed, concrete models of the apps (auto-created m2m tables included)."""
    found: list[type[Model]] = []
    for label in app_labels:
        for model in apps.get_app_config(label).get_models(include_auto_created=True):
            meta = model._meta
            if meta.managed and not meta.proxy and not meta.swapped:
                found.append(model)
    return found


def declared_foreign_keys(models: list[type[Model]]) -> dict[str, set[Any]]:
    """Return each table's foreign keys as the models declare them."""
    result: dict[str, set[Any]] = {}
    for model in models:
        keys = result.setdefault(model._meta.db_table, set())
        for f in model._meta.local_fields:
            if f.remote_field is not None and getattr(f, "db_constraint", False) and f.concrete:
                target = f.target_field  # type: ignore[attr-defined]
                keys.add(((f.column,), target.model._meta.db_table, (target.column,)))
    return result


def declared_names(models: list[type[Model]]) -> dict[str, set[str]]:
    """Return the index and constraint names each table's Meta spells out."""
    return {
        m._meta.db_table: {o.name for o in [*m._meta.indexes, *m._meta.constraints] if o.name}
        for m in models
    }


def expected_catalog(
    connection: BaseDatabaseWrapper, cursor: Any, schema: str, models: list[type[Model]]
) -> tuple[dict[str, Table], list[str]]:
    """Create the models in a scratch schema (the caller rolls back); read it, with warnings."""
    scratch = f"schemadrift_{secrets.token_hex(6)}"
    quote = connection.ops.quote_name
    cursor.execute(f"CREATE SCHEMA {quote(scratch)}")
    # Tables land in the scratch schema; types and functions still resolve in the real one.
    cursor.execute(f"SET LOCAL search_path TO {quote(scratch)}, {quote(schema)}")
    warnings: list[str] = []
    with connection.schema_editor(atomic=False) as editor:
        for model in models:
            if model._meta.auto_created:
                continue  # created with the model that declares the m2m field
            try:
                with transaction.atomic(using=connection.alias):
                    editor.create_model(model)
            except DatabaseError as err:
                warnings.append(_cannot_create(model._meta.db_table, "table", err))
        deferred, editor.deferred_sql = editor.deferred_sql, []
    for statement in deferred:
        # Foreign keys come from the models' metadata instead: creating them would lock
        # the referenced tables and reach into the real schema.
        if getattr(statement, "template", None) == editor.sql_create_fk:
            continue
        try:
            with transaction.atomic(using=connection.alias):
                cursor.execute(str(statement))
        except DatabaseError as err:
            parts = getattr(statement, "parts", {})
            table = getattr(parts.get("table"), "table", "?")
            name = str(parts.get("name", "")).strip('"') or str(statement)[:60]
            warnings.append(_cannot_create(table, name, err))
    tables = sorted({m._meta.db_table for m in models})
    return read_catalog(cursor, scratch, tables), warnings


def _cannot_create(table: str, what: str, err: Exception) -> str:
    reason = str(err).splitlines()[0]
    return (
        f"{table}: {what}: Django's schema editor cannot create what the model declares "
        f"({reason}), so it is not compared; fix the model (Django would fail on it too)"
    )


def _like_index(index: Index) -> bool:
    # Django adds a varchar/text_pattern_ops twin to every indexed or unique CharField, a
    # LIKE-prefix speed-up the model never asks for: not part of the declared schema.
    return index.name.endswith("_like") and "_pattern_ops" in index.definition


def _describe_column(col: Column) -> str:
    parts = [col.type, "NOT NULL" if col.not_null else "NULL"]
    if col.identity:
        parts.append(IDENTITY[col.identity])
    if col.generated:
        parts.append(f"GENERATED ALWAYS AS ({col.default}) STORED")
    elif col.default is not None:
        parts.append(f"DEFAULT {col.default}")
    return " ".join(parts)


def compare_column(table: str, name: str, exp: Column, act: Column) -> list[Difference]:
    """Compare one column: what the model declares must be what the database has."""
    diffs: list[Difference] = []

    def differ(aspect: str, model: Any, database: Any) -> None:
        diffs.append(Difference(table, name, aspect, str(model), str(database)))

    if exp.type != act.type:
        differ("type", exp.type, act.type)
    if exp.not_null != act.not_null:
        differ(
            "nullability",
            "NOT NULL" if exp.not_null else "NULL",
            "NOT NULL" if act.not_null else "NULL",
        )
    if exp.identity != act.identity:
        differ("identity", IDENTITY[exp.identity] or "none", IDENTITY[act.identity] or "none")
    if exp.generated or act.generated:
        if (exp.generated, exp.default) != (act.generated, act.default):
            differ("generated", exp.default if exp.generated else "none", act.default)
    elif exp.default is not None and not same_default(exp.default, act.default):
        differ("default", exp.default, act.default or "none")
    if exp.collation and exp.collation != act.collation:
        differ("collation", exp.collation, act.collation or "default")
    if exp.comment and exp.comment != act.comment:
        differ("comment", exp.comment, act.comment or "none")
    return diffs


def compare_table(
    table: str,
    exp: Table,
    act: Table,
    foreign_keys: set[Any],
    names: set[str],
) -> list[Difference]:
    """Compare one table of the models with the same table in the database."""
    diffs: list[Difference] = []
    for name, col in exp.columns.items():
        if name not in act.columns:
            diffs.append(Difference(table, name, "missing column", _describe_column(col), None))
        else:
            diffs.extend(compare_column(table, name, col, act.columns[name]))
    for name, col in act.columns.items():
        if name not in exp.columns:
            diffs.append(Difference(table, name, "extra column", None, _describe_column(col)))
    if exp.comment and exp.comment != act.comment:
        diffs.append(Difference(table, "", "table comment", exp.comment, act.comment or "none"))
    if exp.primary_key != act.primary_key and not partitioned_key_matches(exp.primary_key, act):
        diffs.append(
            Difference(
                table,
                "",
                "primary key",
                ", ".join(exp.primary_key or ()) or "none",
                ", ".join(act.primary_key or ()) or "none",
            )
        )
    for columns, ref_table, ref_columns in sorted(foreign_keys - act.foreign_keys):
        model = f"({', '.join(columns)}) REFERENCES {ref_table} ({', '.join(ref_columns)})"
        others = [fk for fk in act.foreign_keys if fk[0] == columns]
        database = "; ".join(f"REFERENCES {r} ({', '.join(c)})" for _, r, c in others)
        diffs.append(
            Difference(table, ", ".join(columns), "missing foreign key", model, database or None)
        )
    for index in exp.indexes:
        if index.primary or _like_index(index):
            continue
        matches = [a for a in act.indexes if not a.primary and a.signature == index.signature]
        kind = "unique constraint" if index.unique else "index"
        if not matches:
            same_name = next((a for a in act.indexes if a.name == index.name), None)
            diffs.append(
                Difference(
                    table,
                    f"{kind} {index.name}",
                    f"missing {kind}",
                    index.describe(),
                    same_name.describe() if same_name else None,
                )
            )
        elif index.name in names and all(a.name != index.name for a in matches):
            diffs.append(
                Difference(
                    table, f"{kind} {index.name}", f"{kind} name", index.name, matches[0].name
                )
            )
    actual_checks = {definition: name for name, definition in act.checks.items()}
    for name, definition in exp.checks.items():
        if definition not in actual_checks:
            diffs.append(
                Difference(
                    table,
                    f"check {name}",
                    "missing check constraint",
                    definition,
                    act.checks.get(name),
                )
            )
        elif name in names and actual_checks[definition] != name:
            diffs.append(
                Difference(
                    table, f"check {name}", "check constraint name", name, actual_checks[definition]
                )
            )
    return diffs


@dataclass
class DriftReport:
    """The differences found, those accepted on purpose, and what could not be compared."""

    differences: list[Difference] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    accepted: list[Difference] = field(default_factory=list)

    def accept(self, patterns: Iterable[str]) -> None:
        """Move the differences matching a pattern (fnmatch on `key`) to `accepted`."""
        patterns = list(patterns)
        kept: list[Difference] = []
        for difference in self.differences:
            if any(fnmatch.fnmatchcase(difference.key, p) for p in patterns):
                self.accepted.append(difference)
            else:
                kept.append(difference)
        self.differences = kept


def detect_drift(connection: BaseDatabaseWrapper, app_labels: list[str]) -> DriftReport:
    """List every difference between the apps' models and the connected database."""
    models = compared_models(app_labels)
    tables = sorted({m._meta.db_table for m in models})
    report = DriftReport()
    if not tables:
        return report
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.execute("SET LOCAL lock_timeout = '10s'")
        cursor.execute("SELECT current_schema()")
        schema = cursor.fetchone()[0]
        actual = read_catalog(cursor, schema, tables)
        expected, report.warnings = expected_catalog(connection, cursor, schema, models)
        transaction.set_rollback(True, using=connection.alias)
    foreign_keys = declared_foreign_keys(models)
    names = declared_names(models)
    for table in tables:
        if table not in actual:
            report.differences.append(Difference(table, "", "missing table", "table", None))
            continue
        if table not in expected:
            continue  # could not be created: a warning says so
        report.differences.extend(
            compare_table(
                table,
                expected[table],
                actual[table],
                foreign_keys.get(table, set()),
                names.get(table, set()),
            )
        )
    return report
