"""Turn the autodetector's operations into a plan that is safe while the previous release runs.

During a deploy the new schema meets the old code: the release still running inserts rows
without the new columns and reads the old names. So, working on the operations rather than
on the SQL text, the plan keeps a new column's default in the database, moves each index on
an existing table into a file of its own built CONCURRENTLY, gives every new table and column
a COMMENT ON, and refuses (with the expand/contract steps) what would break the running
release: renames, type changes, NOT NULL without a default, dropped tables.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import migrations, models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

from sqlmigrations.django_internals import ProjectState, effective_default, field_indexes_sql
from sqlmigrations.generator.rendering import CommentOnly

SURROGATE_KEY = "Surrogate key."  # the comment every V file gives an auto-created id
_VARCHAR = re.compile(r"varchar\((\d+)\)")
_RENAME_STEPS = (
    "expand/contract instead: (1) add the new {what} beside the old one and write both, "
    "(2) backfill it, (3) switch reads to it, (4) mark the old one DEPRECATED and drop it "
    "in a later release"
)


@dataclass
class Step:
    """One operation: what the wrapper records (state) and what the schema editor renders."""

    state: Any
    render: Any


@dataclass
class IndexStep:
    """An index on an existing table: built (or dropped) CONCURRENTLY, one per file."""

    state: Any  # the operation the wrapper records once the index exists (or is gone)
    model_name: str
    # (model, editor) -> the CREATE INDEX statements; the model as it is with the index
    statements: Callable[[Any, BaseDatabaseSchemaEditor], list[Any]]
    drop: bool = False


@dataclass
class Plan:
    """What to render, in order, and what stops the migration."""

    main: list[Step] = field(default_factory=list)  # one transactional file
    indexes: list[IndexStep] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # header lines of the main file


def plan(
    app_label: str, operations: list[Any], state: ProjectState, connection: BaseDatabaseWrapper
) -> Plan:
    """Check and adjust the operations; `state` is the project state they start from."""
    return _Planner(app_label, operations, connection).run(state.clone())


class _Planner:
    def __init__(self, app_label: str, operations: list[Any], connection: Any) -> None:
        self.app_label = app_label
        self.operations = operations
        self.connection = connection
        self.result = Plan()
        self.created = {
            op.name_lower for op in operations if isinstance(op, migrations.CreateModel)
        }
        self.removed: list[tuple[str, str, str, str]] = []  # (model label, field, type, column)
        self.added: list[tuple[str, str, str]] = []
        self.deleted: dict[str, tuple[str, frozenset[tuple[str, str]]]] = {}
        self.made: dict[str, tuple[str, frozenset[tuple[str, str]]]] = {}

    def run(self, state: ProjectState) -> Plan:
        for op in self.operations:
            before = state.clone()
            op.state_forwards(self.app_label, state)
            handler = getattr(self, f"_{type(op).__name__}", None)
            if handler is None:
                self.result.main.append(Step(op, op))
            else:
                handler(op, before, state)
        self._probable_renames()
        return self.result

    # -- helpers --------------------------------------------------------------------------

    def _model(self, state: ProjectState, model_name: str) -> Any:
        return state.apps.get_model(self.app_label, model_name)

    def _label(self, state: ProjectState, model_name: str, name: str = "") -> str:
        model = state.models[self.app_label, model_name.lower()].name
        return f"{self.app_label}.{model}" + (f".{name}" if name else "")

    def _type(self, f: Any) -> str:
        return str(f.db_parameters(connection=self.connection)["type"])

    def refuse(self, message: str) -> None:
        self.result.refusals.append(message)

    def _require_comment(self, label: str, f: Any) -> None:
        if f.many_to_many or f.db_comment:
            return
        hint = f" (its help_text would do: {str(f.help_text)!r})" if f.help_text else ""
        self.refuse(
            f"{label}: no db_comment: every new column gets a COMMENT ON (docs/schema.md is "
            f'built from them); add db_comment="<what the column holds>" to the field{hint}'
        )

    # -- one method per operation the rules look at -----------------------------------------

    def _CreateModel(self, op: Any, before: ProjectState, after: ProjectState) -> None:
        if op.options.get("proxy") or op.options.get("managed", True) is False:
            self.result.main.append(Step(op, op))
            return
        label = self._label(after, op.name)
        if not op.options.get("db_table_comment"):
            self.refuse(
                f"{label}: no db_table_comment: every new table gets a COMMENT ON TABLE "
                "(docs/schema.md is built from them); "
                'add db_table_comment="<what a row is>" to its Meta'
            )
        fields = []
        for name, f in op.fields:
            if f.primary_key and f.auto_created and not f.db_comment:
                f = _with(f, db_comment=SURROGATE_KEY)
            else:
                self._require_comment(f"{label}.{name}", f)
            fields.append((name, f))
        render = migrations.CreateModel(
            op.name, fields, options=op.options, bases=op.bases, managers=op.managers
        )
        self.result.main.append(Step(op, render))
        model = self._model(after, op.name)
        self.made[op.name_lower] = (label, _columns(model, self._type))

    def _AddField(self, op: Any, before: ProjectState, after: ProjectState) -> None:
        label = self._label(after, op.model_name, op.name)
        self._require_comment(label, op.field)
        bound = self._model(after, op.model_name)._meta.get_field(op.name)
        if op.model_name_lower in self.created:
            self.result.main.append(Step(op, op))
            return
        if bound.concrete:
            self.added.append((self._label(after, op.model_name), op.name, self._type(bound)))
        table = bound.model._meta.db_table
        render = self._kept_default(op, bound, label, f"{table}.{bound.column}")
        state_field = op.field
        if _indexed(op.field):
            state_field, render = _with(op.field, db_index=False), _with(render, db_index=False)
            self._index_field(op.model_name, op.name, op.field)
        state = migrations.AddField(op.model_name, op.name, state_field, op.preserve_default)
        rendered = migrations.AddField(op.model_name, op.name, render, op.preserve_default)
        self.result.main.append(Step(state, rendered))

    def _kept_default(self, op: Any, f: Any, label: str, column: str) -> Any:
        """Return the field to render: with its default kept in the database when it has one."""
        if f.many_to_many or f.generated or f.db_default is not models.NOT_PROVIDED:
            return op.field
        recipe = (
            "or expand/contract: add it with null=True, backfill it, then make it NOT NULL "
            "in a later release"
        )
        if not op.preserve_default:
            self.refuse(
                f"{label}: NOT NULL without a default on an existing table: the release still "
                f"running inserts rows without it, which would fail; give it a default "
                f"(default=... or db_default=...), {recipe}"
            )
            return op.field
        if (f.has_default() and callable(f.default)) or getattr(f, "auto_now", False):
            if not f.null:
                shown = getattr(f.default, "__name__", "auto_now")
                self.refuse(
                    f"{label}: its default ({shown}) is computed in Python, so the database "
                    "cannot fill the column for the release still running: declare db_default "
                    f"(e.g. db_default=Now()), {recipe}"
                )
            return op.field
        value = effective_default(f)
        if value is None:
            return op.field
        self.result.notes.append(
            f"Keeps DEFAULT {value!r} on {column} (the model's default) so that the release "
            "still running can insert rows without the column; a later release may drop it "
            "once no running code leaves the column out."
        )
        return _with(op.field, db_default=value)

    def _index_field(self, model_name: str, name: str, f: Any) -> None:
        def statements(model: Any, editor: BaseDatabaseSchemaEditor) -> list[Any]:
            return field_indexes_sql(editor, model, model._meta.get_field(name))

        state = migrations.AlterField(model_name, name, f)
        self.result.indexes.append(IndexStep(state, model_name, statements))

    def _AlterField(self, op: Any, before: ProjectState, after: ProjectState) -> None:
        if op.model_name_lower in self.created:
            self.result.main.append(Step(op, op))
            return
        old = self._model(before, op.model_name)._meta.get_field(op.name)
        new = self._model(after, op.model_name)._meta.get_field(op.name)
        label = self._label(after, op.model_name, op.name)
        if old.column != new.column:
            self.refuse(
                f"{label}: renames column {old.column} to {new.column}, which breaks the "
                "release still running (it reads the old name); "
                + _RENAME_STEPS.format(what="column")
            )
        old_type, new_type = self._type(old), self._type(new)
        if old_type != new_type and not _widens(old_type, new_type):
            self.refuse(
                f"{label}: changes type {old_type} to {new_type}, which rewrites the table under "
                "an ACCESS EXCLUSIVE lock and breaks the release still running; "
                + _RENAME_STEPS.format(what="column of the new type")
            )
        if old.null and not new.null:
            self.refuse(
                f"{label}: NULL to NOT NULL: the release still running may insert NULLs, and "
                "SET NOT NULL scans the table under an ACCESS EXCLUSIVE lock; instead backfill "
                "and ship code that always writes it, then (with --empty) add CHECK "
                f"({new.column} IS NOT NULL) NOT VALID, VALIDATE it, and SET NOT NULL"
            )
        if _only_comment_changed(old, new):
            self.result.main.append(Step(op, CommentOnly(op)))
            return
        if _indexed(new) and not _indexed(old):
            first = _with(op.field, db_index=False)
            _, _, _, kept = old.deconstruct()
            if first.deconstruct()[3] != kept:  # more changed than the index
                changed = migrations.AlterField(op.model_name, op.name, first)
                self.result.main.append(Step(changed, changed))
            self._index_field(op.model_name, op.name, op.field)
            return
        self.result.main.append(Step(op, op))

    def _RemoveField(self, op: Any, before: ProjectState, after: ProjectState) -> None:
        # Dropping a deprecated column is allowed: lint's drop-column-without-deprecation
        # decides, from the earlier files. Here only a drop paired with an add is caught.
        f = self._model(before, op.model_name)._meta.get_field(op.name)
        if f.concrete and op.model_name_lower not in self.created:
            label = self._label(before, op.model_name)
            self.removed.append((label, op.name, self._type(f), f.column))
        self.result.main.append(Step(op, op))

    def _RenameField(self, op: Any, before: ProjectState, after: ProjectState) -> None:
        old = self._model(before, op.model_name)._meta.get_field(op.old_name)
        new = self._model(after, op.model_name)._meta.get_field(op.new_name)
        if old.column != new.column:
            self.refuse(
                f"{self._label(after, op.model_name, op.new_name)}: renames column {old.column} "
                f"to {new.column}, which breaks the release still running; "
                + _RENAME_STEPS.format(what="column")
            )
        self.result.main.append(Step(op, op))

    def _RenameModel(self, op: Any, before: ProjectState, after: ProjectState) -> None:
        self._table_renamed(op, before, after, op.old_name, op.new_name)

    def _AlterModelTable(self, op: Any, before: ProjectState, after: ProjectState) -> None:
        self._table_renamed(op, before, after, op.name, op.name)

    def _table_renamed(self, op: Any, before: Any, after: Any, old: str, new: str) -> None:
        old_table = self._model(before, old)._meta.db_table
        new_table = self._model(after, new)._meta.db_table
        if old_table != new_table:
            self.refuse(
                f"{self._label(after, new)}: renames table {old_table} to {new_table}, which "
                "breaks the release still running; " + _RENAME_STEPS.format(what="table")
            )
        self.result.main.append(Step(op, op))

    def _DeleteModel(self, op: Any, before: ProjectState, after: ProjectState) -> None:
        model = self._model(before, op.name)
        if model._meta.managed and not model._meta.proxy:
            label = self._label(before, op.name)
            self.deleted[op.name_lower] = (label, _columns(model, self._type))
        self.result.main.append(Step(op, op))

    def _AddIndex(self, op: Any, before: ProjectState, after: ProjectState) -> None:
        if op.model_name_lower in self.created:
            self.result.main.append(Step(op, op))
            return
        index = op.index
        self.result.indexes.append(
            IndexStep(op, op.model_name, lambda model, editor: [index.create_sql(model, editor)])
        )

    def _AddConstraint(self, op: Any, before: ProjectState, after: ProjectState) -> None:
        c = op.constraint
        if op.model_name_lower in self.created or not _unique_index(c):
            self.result.main.append(Step(op, op))
            return
        self.result.indexes.append(
            IndexStep(op, op.model_name, lambda model, editor: [c.create_sql(model, editor)])
        )

    def _RemoveIndex(self, op: Any, before: ProjectState, after: ProjectState) -> None:
        index = before.models[self.app_label, op.model_name_lower].get_index_by_name(op.name)
        self._drop_index(op, lambda model, editor: [index.create_sql(model, editor)])

    def _RemoveConstraint(self, op: Any, before: ProjectState, after: ProjectState) -> None:
        c = before.models[self.app_label, op.model_name_lower].get_constraint_by_name(op.name)
        if not _unique_index(c):
            self.result.main.append(Step(op, op))
            return
        self._drop_index(op, lambda model, editor: [c.create_sql(model, editor)])

    def _drop_index(self, op: Any, statements: Callable[[Any, Any], list[Any]]) -> None:
        if op.model_name_lower in self.created:
            self.result.main.append(Step(op, op))
            return
        self.result.indexes.append(IndexStep(op, op.model_name, statements, drop=True))

    def _probable_renames(self) -> None:
        """Refuse a dropped column or table with a new one just like it: a likely rename."""
        for label, name, kind, column in self.removed:
            twin = next((a for a in self.added if a[0] == label and a[2] == kind), None)
            if twin is None:
                continue
            self.added.remove(twin)
            self.refuse(
                f"{label}: field {name} removed and {twin[1]} added, both {kind}: a probable "
                f'rename, which as generated (DROP COLUMN "{column}", ADD COLUMN) loses the '
                "data, and as a RENAME COLUMN breaks the release still running; "
                + _RENAME_STEPS.format(what="column")
            )
        made = {columns: label for label, columns in self.made.values()}
        for label, columns in self.deleted.values():
            if columns in made:
                self.refuse(
                    f"{label}: deleted and {made[columns]} created with the same columns: a "
                    "probable rename, which as generated (DROP TABLE) loses the data; "
                    + _RENAME_STEPS.format(what="table")
                )
            else:
                self.refuse(
                    f"{label}: deleting the model drops its table and rows; first ship the "
                    'release that stops using it (db_table_comment="DEPRECATED: ..."), take a '
                    "backup, then generate the drop with --allow-unsafe"
                )


def _only_comment_changed(old: Any, new: Any) -> bool:
    if old.db_comment == new.db_comment:
        return False
    (_, *before), (_, *after) = old.deconstruct(), new.deconstruct()
    before[2].pop("db_comment", None)
    after[2].pop("db_comment", None)
    return before == after


def _with(f: Any, **changes: Any) -> Any:
    """Return a copy of the unbound field `f` with some of its arguments changed."""
    _, _, args, kwargs = f.deconstruct()
    return f.__class__(*args, **{**kwargs, **changes})


def _indexed(f: Any) -> bool:
    # Django's own test (_field_should_be_indexed): unique fields get a constraint instead.
    return bool(f.db_index and not f.unique and not f.many_to_many)


def _unique_index(c: Any) -> bool:
    # Django renders these as CREATE UNIQUE INDEX, the others as ALTER TABLE ADD CONSTRAINT.
    return isinstance(c, models.UniqueConstraint) and bool(
        c.condition or c.expressions or c.include or c.opclasses
    )


def _widens(old: str, new: str) -> bool:
    """Tell whether a type change only widens a varchar, which PostgreSQL does in place."""
    before = _VARCHAR.fullmatch(old)
    if before is None:
        return False
    after = _VARCHAR.fullmatch(new)
    return new in ("text", "varchar") or (after is not None and int(after[1]) >= int(before[1]))


def _columns(model: Any, db_type: Callable[[Any], str]) -> frozenset[tuple[str, str]]:
    return frozenset(
        (f.column, db_type(f)) for f in model._meta.local_concrete_fields if not f.primary_key
    )
