"""Render a generator plan to SQL with Django's schema editor, as `sqlmigrate` would.

The main file is the plan's operations rendered forwards and (for its undo) backwards; each
index on an existing table becomes one `CREATE INDEX CONCURRENTLY IF NOT EXISTS` statement
with a `DROP INDEX CONCURRENTLY IF EXISTS` undo.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError, migrations, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.operations.base import Operation

from sqlmigrations.django_internals import (
    IrreversibleError,
    ProjectState,
    alter_column_comment_sql,
)

if TYPE_CHECKING:
    from sqlmigrations.generator.safeguards import IndexStep


# The schema editor's index templates, and what they become for an existing table.
_CONCURRENT = {
    "sql_create_index": "CREATE INDEX ",
    "sql_create_unique_index": "CREATE UNIQUE INDEX ",
}


class RenderError(Exception):
    """Django's schema editor cannot render what the generator needs."""


@dataclass
class IndexFile:
    """One index built CONCURRENTLY: its statement, its undo, and the wrapper's operations."""

    table: str
    index: str
    sql: str
    undo_sql: str
    dropped: bool = False  # the file drops the index; its undo builds it again
    operations: list[Any] = field(default_factory=list)


def collect(connection: BaseDatabaseWrapper, run: Callable[[Any], Any]) -> str:
    """Run `run(schema_editor)` in collect_sql mode and return the SQL, as sqlmigrate does."""
    with connection.schema_editor(collect_sql=True, atomic=False) as editor:
        run(editor)
    return "\n".join(editor.collected_sql).strip() + "\n"


def render(
    connection: BaseDatabaseWrapper, state: ProjectState, migration: migrations.Migration
) -> tuple[str, str | None, str]:
    """Return (forward SQL, reverse SQL or None when irreversible, note about the reverse)."""
    forward = collect(connection, lambda ed: migration.apply(state.clone(), ed, collect_sql=True))
    # Rendering backwards reads constraint names from the catalog, so it needs the forward
    # change in place: run it in a transaction that is always rolled back. This also proves
    # the forward SQL runs on this database.
    note = ""
    try:
        with transaction.atomic(using=connection.alias):
            with connection.cursor() as cursor:
                cursor.execute(forward)
            backward = collect(
                connection, lambda ed: migration.unapply(state.clone(), ed, collect_sql=True)
            )
            transaction.set_rollback(True, using=connection.alias)
        return forward, backward, note
    except DatabaseError as err:
        note = f"the forward SQL failed in a trial run on this database ({err}); "
    except (IrreversibleError, ValueError) as err:
        return forward, None, str(err)
    try:
        backward = collect(
            connection, lambda ed: migration.unapply(state.clone(), ed, collect_sql=True)
        )
    except (IrreversibleError, ValueError, DatabaseError) as err:
        return forward, None, note + str(err)
    return forward, backward, note


def render_indexes(
    connection: BaseDatabaseWrapper, app_label: str, state: ProjectState, steps: list[IndexStep]
) -> list[IndexFile]:
    """Return one file per index statement; `state` is the state after the main file.

    A step's operation goes with its last statement, so each wrapper's model state holds
    what its file and the files before it built.
    """
    state = state.clone()
    files: list[IndexFile] = []
    orphans: list[Any] = []
    with connection.schema_editor(collect_sql=True, atomic=False) as editor:
        _build_concurrently(editor)
        for step in steps:
            if not step.drop:
                step.state.state_forwards(app_label, state)
            model = state.apps.get_model(app_label, step.model_name)  # one with the index
            for statement in step.statements(model, editor):
                name = str(statement.parts["name"])
                create = f"{statement};\n"
                drop = f"{editor.sql_delete_index_concurrently % {'name': name}};\n"
                forward, undo = (drop, create) if step.drop else (create, drop)
                table = model._meta.db_table
                files.append(IndexFile(table, name.strip('"'), forward, undo, step.drop))
            if step.drop:
                step.state.state_forwards(app_label, state)
            if files:
                files[-1].operations.append(step.state)
            else:
                orphans.append(step.state)
    if files:
        files[0].operations[:0] = orphans
    elif orphans:
        raise RenderError("the index changes render no SQL; generate them with --empty instead")
    return files


def _build_concurrently(editor: Any) -> None:
    """Make the editor's index templates build without blocking writes, and re-runnable."""
    for attr, plain in _CONCURRENT.items():
        template = getattr(editor, attr)
        if not template.startswith(plain):
            raise RenderError(
                f"Django's schema editor template {attr} is {template!r}, not {plain}...: "
                "this generator does not know how to build it CONCURRENTLY"
            )
        setattr(editor, attr, f"{plain}CONCURRENTLY IF NOT EXISTS {template[len(plain) :]}")


class CommentOnly(Operation):
    """Render an AlterField that only changes db_comment as a lone COMMENT ON COLUMN.

    Django renders it with a no-op `ALTER COLUMN ... TYPE` that still takes an ACCESS
    EXCLUSIVE lock, which lint rightly refuses; the comment needs no lock on the rows.
    """

    reduces_to_sql = True
    reversible = True

    def __init__(self, alter: Any) -> None:
        self.alter = alter

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return (self.__class__.__name__, [self.alter], {})

    def describe(self) -> str:
        return self.alter.describe()

    def state_forwards(self, app_label: str, state: Any) -> None:
        self.alter.state_forwards(app_label, state)

    def database_forwards(
        self, app_label: str, editor: Any, from_state: Any, to_state: Any
    ) -> None:
        model = to_state.apps.get_model(app_label, self.alter.model_name)
        f = model._meta.get_field(self.alter.name)
        editor.execute(*alter_column_comment_sql(editor, model, f, f.db_comment))

    def database_backwards(
        self, app_label: str, editor: Any, from_state: Any, to_state: Any
    ) -> None:
        self.database_forwards(app_label, editor, from_state, to_state)


def irreversible_statement(script: str, undo_script: str) -> str:
    """Return SQL that stops a backwards migration with a message naming the files."""
    message = f"{script} has no generated undo: edit {undo_script} (see its header)"
    return f"DO $$ BEGIN RAISE EXCEPTION '{message}'; END $$;\n"
