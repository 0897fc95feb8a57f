"""Write the next V{n} SQL migration, its U file and its Django wrapper from model changes.

The SQL is what Django's schema editor would run for the changes the autodetector finds
(`makemigrations` + `sqlmigrate`), so the models and the tables agree by construction; the
developer then reviews and edits the file like any hand-written migration.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import django
from django.apps import apps
from django.db import DatabaseError, migrations, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.autodetector import MigrationAutodetector
from django.db.migrations.exceptions import IrreversibleError
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.questioner import MigrationQuestioner
from django.db.migrations.state import ProjectState
from django.db.migrations.writer import MigrationWriter

from dbops import engine
from dbops.sqlmigrations.names import convention_problems, parse_name
from dbops.wrappers import find_wrappers

_SNAKE = re.compile(r"[a-z0-9]+(?:_[a-z0-9]+)*")
DATA_DROPPING = (migrations.RemoveField, migrations.DeleteModel)


class GeneratorError(Exception):
    """Refuse to generate a migration; the message says why and what to do."""


@dataclass
class Generated:
    """The three files of one generated migration, not yet written."""

    version: int
    name: str
    app_label: str
    sql_path: Path
    undo_path: Path
    wrapper_path: Path
    sql: str
    undo_sql: str
    wrapper: str
    operations: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # warnings for the developer

    def write(self) -> list[Path]:
        """Write the SQL file, the U file and the wrapper (its package too, if new)."""
        for path in (self.sql_path, self.undo_path, self.wrapper_path):
            if path.exists():
                raise GeneratorError(f"{path} already exists; nothing was written")
        self.sql_path.parent.mkdir(parents=True, exist_ok=True)
        self.undo_path.parent.mkdir(parents=True, exist_ok=True)
        package = self.wrapper_path.parent
        if not package.exists():
            package.mkdir(parents=True)
        init = package / "__init__.py"
        if not init.exists():
            init.write_text("")
        self.sql_path.write_text(self.sql)
        self.undo_path.write_text(self.undo_sql)
        self.wrapper_path.write_text(self.wrapper)
        return [self.sql_path, self.undo_path, self.wrapper_path]


def check_name(name: str, version: int) -> None:
    """Refuse a description that breaks the team's convention (snake_case)."""
    if _SNAKE.fullmatch(name):
        return
    script = f"V{version}__{name}.sql"
    try:
        problems = convention_problems(parse_name(script))
    except Exception:  # noqa: BLE001 - any unparsable name gets the generic advice below
        problems = []
    fix = next((p.split("rename it to ", 1)[1] for p in problems if "rename it to" in p), "")
    suggestion = f"; e.g. {fix.removeprefix(f'V{version}__').removesuffix('.sql')}" if fix else ""
    raise GeneratorError(
        f"migration name {name!r} is not snake_case: use lowercase letters, digits and single "
        f"underscores, saying what the migration does (e.g. add_due_time_to_tasks){suggestion}"
    )


def next_version() -> int:
    """Return the version after the highest V or U file on disk (1 for an empty folder)."""
    versions = [mf.name.version for mf in engine.load_files(refresh=True) if mf.name.version]
    return max((v.parts[0] for v in versions if v is not None), default=0) + 1


def detect_changes(
    app_label: str, questioner: MigrationQuestioner
) -> tuple[list[Any], list[tuple[str, str]], MigrationLoader]:
    """Return the operations and outside dependencies for the app's model changes."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    conflicts = loader.detect_conflicts()
    if conflicts.get(app_label):
        raise GeneratorError(
            f"app {app_label!r} has conflicting migrations "
            f"({', '.join(conflicts[app_label])}); resolve them first"
        )
    autodetector = MigrationAutodetector(
        loader.project_state(), ProjectState.from_apps(apps), questioner
    )
    changes = autodetector.changes(
        graph=loader.graph, trim_to_apps={app_label}, convert_apps={app_label}
    )
    others = sorted(label for label in changes if label != app_label)
    if others:
        raise GeneratorError(
            f"the changes in {app_label!r} depend on unmigrated model changes in "
            f"{', '.join(others)}; run makesqlmigration for {', '.join(others)} first"
        )
    operations: list[Any] = []
    dependencies: list[tuple[str, str]] = []
    for migration in changes.get(app_label, []):
        operations.extend(migration.operations)
        for dep in migration.dependencies:
            dep = tuple(dep)
            if dep[0] != app_label and dep not in dependencies:
                dependencies.append(dep)  # type: ignore[arg-type]
    return operations, dependencies, loader


def wrapper_dependencies(
    loader: MigrationLoader, app_label: str, outside: list[tuple[str, str]]
) -> tuple[list[tuple[str, str]], str]:
    """Return the new wrapper's dependencies and the app migration to go back to ("zero").

    D1: the wrapper of V{n} depends on the wrapper of V{n-1}, in whatever app that is, and
    on the app's own latest migration, even when that is already an ancestor: Django
    counts an app's leaves within the app, so without it the app would have two.
    """
    wrappers = find_wrappers(loader)
    by_version = {}
    for w in wrappers:
        for script in w.scripts:
            name = parse_name(Path(script).name)
            if name.kind == "V" and name.version is not None:
                by_version[name.version] = w
    on_disk = [mf for mf in engine.load_files() if mf.kind == "V" and mf.name.version]
    latest = max(on_disk, key=lambda mf: mf.name.version, default=None)  # type: ignore[arg-type,return-value]
    if latest is not None and latest.name.version not in by_version:
        raise GeneratorError(
            f"{latest.script} has no wrapper migration (see `manage.py check`, dbops.E002): "
            "the new migration must depend on it; add its wrapper first"
        )
    deps: list[tuple[str, str]] = []
    if by_version:
        deps.append(by_version[max(by_version)].key)
    previous_app = "zero"
    for leaf in loader.graph.leaf_nodes(app_label):
        previous_app = leaf[1]
        if leaf not in deps:
            deps.append(leaf)
    for dep in outside:
        if dep not in deps:
            deps.append(dep)
    return deps, previous_app


def require_migrated(connection: BaseDatabaseWrapper) -> None:
    """Refuse to render against a database that lacks applied migrations."""
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        names = ", ".join(f"{m.app_label}.{m.name}" for m, _ in plan[:5])
        raise GeneratorError(
            f"{len(plan)} migration(s) are not applied to the database ({names}"
            f"{', ...' if len(plan) > 5 else ''}); run `manage.py migrate` first: the SQL is "
            "rendered against the migrated schema (constraint names come from its catalog)"
        )


def _collect(connection: BaseDatabaseWrapper, run: Callable[[Any], Any]) -> str:
    """Run `run(schema_editor)` in collect_sql mode and return the SQL, as sqlmigrate does."""
    with connection.schema_editor(collect_sql=True, atomic=False) as editor:
        run(editor)
    return "\n".join(editor.collected_sql).strip() + "\n"


def render(
    connection: BaseDatabaseWrapper, state: ProjectState, migration: migrations.Migration
) -> tuple[str, str | None, str]:
    """Return (forward SQL, reverse SQL or None when irreversible, note about the reverse)."""
    forward = _collect(connection, lambda ed: migration.apply(state.clone(), ed, collect_sql=True))
    # Rendering backwards reads constraint names from the catalog, so it needs the forward
    # change in place: run it in a transaction that is always rolled back. This also proves
    # the forward SQL runs on this database.
    note = ""
    try:
        with transaction.atomic(using=connection.alias):
            with connection.cursor() as cursor:
                cursor.execute(forward)
            backward = _collect(
                connection, lambda ed: migration.unapply(state.clone(), ed, collect_sql=True)
            )
            transaction.set_rollback(True, using=connection.alias)
        return forward, backward, note
    except DatabaseError as err:
        note = f"the forward SQL failed in a trial run on this database ({err}); "
    except (IrreversibleError, ValueError) as err:
        return forward, None, str(err)
    try:
        backward = _collect(
            connection, lambda ed: migration.unapply(state.clone(), ed, collect_sql=True)
        )
    except (IrreversibleError, ValueError, DatabaseError) as err:
        return forward, None, note + str(err)
    return forward, backward, note


def irreversible_statement(script: str, undo_script: str) -> str:
    """Return SQL that stops a backwards migration with a message naming the files."""
    message = f"{script} has no generated undo: edit {undo_script} (see its header)"
    return f"DO $$ BEGIN RAISE EXCEPTION '{message}'; END $$;\n"


def _header(lines: list[str]) -> str:
    return "".join(f"-- {line}\n" if line else "--\n" for line in lines)


def generate(
    app_label: str,
    name: str,
    *,
    connection: BaseDatabaseWrapper | None,
    questioner: MigrationQuestioner,
    empty: bool = False,
    command: str = "manage.py makesqlmigration",
    today: datetime.date | None = None,
) -> Generated | None:
    """Build the next migration for the app's model changes; None when there are none."""
    try:
        app_config = apps.get_app_config(app_label)
    except LookupError:
        raise GeneratorError(
            f"no installed app with label {app_label!r}; use one of "
            f"{', '.join(sorted(c.label for c in apps.get_app_configs()))}"
        ) from None
    version = next_version()
    check_name(name, version)
    operations, outside, loader = detect_changes(app_label, questioner)
    if not operations and not empty:
        return None
    if empty:
        operations = []
    stem = f"V{version}__{name}"
    script, undo_script = f"{stem}.sql", f"U{version}__{name}.sql"
    deps, back_to = wrapper_dependencies(loader, app_label, [] if empty else outside)
    date = (today or datetime.date.today()).isoformat()
    generated_by = f"Generated by `{command} {app_label} {name}` on {date}"
    rollback = f"Rollback: {undo_script} (`manage.py migrate {app_label} {back_to}` runs it)."
    notes: list[str] = []
    if empty:
        sql = _header(
            [f"{stem}: {name.replace('_', ' ')}.", f"{generated_by} (--empty).", rollback]
        )
        sql += "\n-- Write the migration's SQL below.\n"
        undo = _header(
            [
                f"U{version}: undo {script}.",
                f"{generated_by} (--empty).",
                "Write the SQL that reverses it below.",
            ]
        )
    else:
        if connection is None:
            raise GeneratorError("a database connection is needed to render the SQL")
        require_migrated(connection)
        migration = migrations.Migration(stem, app_label)
        migration.operations = operations
        forward, backward, note = render(connection, loader.project_state(), migration)
        drops = [op.describe() for op in operations if isinstance(op, DATA_DROPPING)]
        warning = (
            [f"Warning: drops data ({'; '.join(drops)}): deploy code that no longer uses it first."]
            if drops
            else []
        )
        sql = _header(
            [
                f"{stem}: {name.replace('_', ' ')}.",
                f"{generated_by},",
                f"rendered by the Django {django.get_version()} schema editor from the model "
                "changes below;",
                "review and edit it before it is applied.",
                *warning,
                rollback,
            ]
        )
        sql += "\n" + forward
        undo_header = [f"U{version}: undo {script}.", generated_by + "."]
        if backward is None:
            notes.append(f"{undo_script} cannot be generated: {note}; write it by hand")
            undo = _header(
                [
                    *undo_header,
                    f"{script} cannot be reversed automatically: {note}.",
                    "Write the reverse SQL here by hand and remove the RAISE below, or keep it",
                    "to make migrating backwards stop here (restore from a backup instead).",
                ]
            )
            undo += irreversible_statement(script, undo_script)
        else:
            if note:
                notes.append(f"{undo_script}: {note}the reverse SQL was rendered without it")
            if drops:
                undo_header.append(
                    f"Note: this restores the schema, not the data that {script} dropped."
                )
            undo = _header(undo_header) + "\n" + backward
    wrapper = render_wrapper(stem, app_label, script, deps, operations, date)
    location = Path(engine.option("LOCATION"))
    undo_location = engine.option("UNDO_LOCATION") or location
    writer = MigrationWriter(migrations.Migration(stem, app_label))
    try:
        wrapper_dir = Path(writer.basedir)
    except ValueError as err:
        raise GeneratorError(f"cannot place the wrapper for {app_config.label}: {err}") from None
    return Generated(
        version=version,
        name=name,
        app_label=app_label,
        sql_path=location / script,
        undo_path=undo_location / undo_script,
        wrapper_path=wrapper_dir / f"{stem}.py",
        sql=sql,
        undo_sql=undo,
        wrapper=wrapper,
        operations=operations,
        notes=notes,
    )


def render_wrapper(
    stem: str,
    app_label: str,
    script: str,
    dependencies: list[tuple[str, str]],
    state_operations: list[Any],
    date: str,
) -> str:
    """Return the wrapper's source, written by Django's MigrationWriter."""
    from dbops.operations import RunSQLFile

    migration = migrations.Migration(stem, app_label)
    migration.dependencies = dependencies
    # Only an app's first migration is initial: `migrate --fake-initial` fakes an initial
    # migration whose tables exist, which for a later one would skip real changes.
    migration.initial = not any(dep[0] == app_label for dep in dependencies)
    migration.operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[RunSQLFile(script)], state_operations=state_operations
        )
    ]
    text = MigrationWriter(migration, include_header=False).as_string()
    text = text.replace(
        "class Migration(migrations.Migration):", "class Migration(SQLFileMigration):"
    )
    # The writer names the operation by its module path; the wrapper imports it by name.
    text = re.sub(r"(?:dbops\.operations\.)+RunSQLFile\(", "RunSQLFile(", text)
    text = text.replace("import dbops.operations\n", "")
    lines = text.splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.startswith("from django.db import"))
    lines.insert(at + 1, "\nfrom dbops.operations import RunSQLFile, SQLFileMigration\n")
    header = f"# Generated by manage.py makesqlmigration on {date}: runs migrations_sql/{script}\n"
    return header + "".join(lines)
